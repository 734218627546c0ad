"""Fault tests: break something on purpose, then count every event.

Each test emits a known number of events against the real RabbitMQ and the test
database, with workers running as real ``manage.py eventhub_worker`` processes,
and ends by counting: every event took effect exactly once (one testapp Effect
row) or its delivery is visibly dead. Run them alone with ``pytest -m faults -s``
to see the counts printed.
"""

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from urllib.parse import urlparse

import pika
import pytest
from django.contrib.auth.models import Permission, User

from eventhub import broker as brokers
from eventhub import emit, emit_many
from eventhub.models import Attempt, Delivery, Event, Replay
from eventhub.outbox import background
from eventhub.outbox.relay import relay_once
from eventhub.outbox.replay import replay_matching
from eventhub.worker.deliver import INTERRUPTED
from tests.conftest import RABBITMQ_URL
from tests.support import factories
from tests.support.process import command_env, manage, start_worker
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.testapp.models import Effect, Switch

pytestmark = [pytest.mark.faults, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]
# These tests are about the retry policy alone: the circuit breaker, which would hold these
# deliveries after a few failures in a row (docs/endpoint-health.md), is off for their routes.
NO_BREAKER = {"breaker_failures": 0, "breaker_failure_percent": 0}


def status_counts(events: list[Event]) -> Counter:
    """How many of these events' deliveries are in each status."""
    return Counter(Delivery.objects.filter(event__in=events).values_list("status", flat=True))


def count_and_report(label: str, events: list[Event], handler: str) -> dict[str, int]:
    """Count effects per event and print the tally; every event must be once-in-effect or dead."""
    ids = [str(e.pk) for e in events]
    effects = Counter(
        Effect.objects.filter(event_id__in=ids, handler=handler).values_list("event_id", flat=True)
    )
    dead = set(
        Delivery.objects.filter(event__in=events, status="dead").values_list("event_id", flat=True).distinct()
    )
    tally = {
        "events": len(ids),
        "delivered_once": sum(1 for i in ids if effects[i] == 1),
        "duplicated": sum(1 for i in ids if effects[i] > 1),
        "dead": sum(1 for e in events if e.pk in dead and effects[str(e.pk)] == 0),
    }
    tally["lost"] = tally["events"] - tally["delivered_once"] - tally["duplicated"] - tally["dead"]
    print(f"\n[{label}] " + ", ".join(f"{k}={v}" for k, v in tally.items()))
    assert tally["lost"] == 0 and tally["duplicated"] == 0, tally
    return tally


@pytest.fixture(autouse=True)
def _publish_to_rabbitmq(rabbitmq_broker):
    """This test process publishes to the real RabbitMQ (not the embedded broker)."""
    return rabbitmq_broker


@pytest.fixture
def worker_process(queue_name, tmp_path):
    """Start ``manage.py eventhub_worker`` on this test's queue in its own process group."""
    started: list[subprocess.Popen] = []

    def start(*, threads: int = 8, relay: bool = False, **env: str) -> subprocess.Popen:
        # These tests count what the retry, rescue and shutdown mechanisms do with every thread
        # busy on one slow or failing route; the per-process share that keeps such a route from
        # taking every thread (tests/system/test_route_limits.py, docs/route-limits.md) is off.
        env = {"EVENTHUB_ROUTE_THREAD_SHARE": "1", "EVENTHUB_FAILING_ROUTE_STARTS_PER_SECOND": "1000", **env}
        log_path = tmp_path / f"worker-{len(started)}.log"
        proc = start_worker(
            queue_name,
            "--shutdown-timeout",
            "10000",
            threads=threads,
            relay=relay,
            env=command_env(**env),
            stdout=open(log_path, "w"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log_path
        started.append(proc)
        return proc

    yield start
    for proc in started:
        # The whole group: a fork or worker process may outlive a main process that exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def log_of(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()


def xq_depth(queue: str) -> int:
    """Messages in the queue's Dramatiq dead-letter queue."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return connection.channel().queue_declare(f"{queue}.XQ", passive=True).method.message_count
    finally:
        connection.close()


def operator() -> User:
    """A staff user holding the replay permission."""
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="replay_delivery"))
    return User.objects.get(pk=user.pk)  # fresh: permissions are cached per instance


def test_a_broker_cut_while_emitting_30_events_all_30_delivered_once_by_the_relay(queue_name, worker_process):
    target = urlparse(RABBITMQ_URL)
    proxy = TcpProxy(target.hostname, target.port or 5672).start()
    credentials = target.netloc.rsplit("@", 1)[0]
    # The same broker, user and vhost, reached through the proxy.
    brokers.setup(url=target._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}").geturl())
    try:
        factories.route(factories.event_type("fault.cut"), "testapp.record", queue=queue_name)
        worker_process()  # consumes from RabbitMQ directly; only this process's publishing is cut
        before = [emit("fault.cut", data={"n": n}) for n in range(10)]
        assert background.flush()  # the background sender has sent these before the cut
        proxy.cut()
        during = [emit("fault.cut", data={"n": n}) for n in range(10, 30)]  # no exception reaches the caller
        assert background.flush()  # ... and has failed to send these
        assert status_counts(during) == {"pending": 20}
        proxy.restore()

        assert relay_once(after_seconds=0) == 20
        events = before + during
        wait_for(lambda: status_counts(events) == {"succeeded": 30}, what="30 succeeded")
    finally:
        brokers.setup(url=RABBITMQ_URL)
        proxy.stop()
    tally = count_and_report("a: broker cut", events, "testapp.record")
    assert tally["delivered_once"] == 30


def test_b_worker_sigkilled_mid_handler_12_events_all_12_run_again_and_succeed(queue_name, worker_process):
    factories.route(factories.event_type("fault.kill"), "testapp.slow", queue=queue_name, max_attempts=3)
    worker = worker_process(threads=12)
    # Emitted one by one: a message each, twelve at once in flight on twelve threads.
    events = [emit("fault.kill", data={"sleep": 2}) for _ in range(12)]
    wait_for(lambda: status_counts(events) == {"running": 12}, what="12 running")

    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: main process and its worker process
    worker.wait(10)
    assert Effect.objects.count() == 0  # every handler died mid-sleep
    assert status_counts(events) == {"running": 12}

    worker_process(threads=12)  # RabbitMQ redelivers the unacknowledged messages to it
    wait_for(lambda: status_counts(events) == {"succeeded": 12}, what="12 succeeded")
    tally = count_and_report("b: worker SIGKILLed", events, "testapp.slow")
    assert tally["delivered_once"] == 12
    for delivery in Delivery.objects.filter(event__in=events):
        history = list(delivery.attempt_log.values_list("number", "succeeded", "error"))
        assert history == [(1, False, INTERRUPTED), (2, True, "")]


def test_c_handler_raising_20_events_retried_with_backoff_20_dead_then_20_replayed_once(
    queue_name, worker_process
):
    route = factories.route(
        factories.event_type("fault.flaky"),
        "testapp.flaky",
        queue=queue_name,
        max_attempts=3,
        min_backoff_ms=200,
        max_backoff_ms=800,
        **NO_BREAKER,
    )
    Switch.objects.create(name="broken", on=True)
    worker_process()
    events = emit_many([{"type": "fault.flaky", "data": {"n": n}} for n in range(20)])
    wait_for(lambda: status_counts(events) == {"dead": 20}, what="20 dead")

    tally = count_and_report("c: handler raises (before fix)", events, "testapp.flaky")
    assert tally["dead"] == 20
    gaps = []
    for delivery in Delivery.objects.filter(event__in=events):
        assert delivery.attempts == 3
        assert delivery.last_error == "RuntimeError: the downstream system is broken"
        log = list(delivery.attempt_log.order_by("number"))
        assert [a.succeeded for a in log] == [False, False, False]
        gaps += [(log[i + 1].started_at - log[i].finished_at).total_seconds() * 1000 for i in range(2)]
    # Backoff: at least the minimum, jittered, and bounded (the max plus generous scheduling slack:
    # delayed messages wait in RabbitMQ's delay queue and the worker's, and SQLite serialises writes).
    assert min(gaps) >= 190 and max(gaps) <= 800 + 5000, (min(gaps), max(gaps))
    print(f"\n[c: backoff] gaps between attempts: min {min(gaps):.0f} ms, max {max(gaps):.0f} ms")
    assert len({round(g, -1) for g in gaps}) > 5

    Switch.objects.filter(name="broken").update(on=False)
    user = operator()
    assert replay_matching(route=route, status="dead", user=user, dry_run=True) == 20
    assert replay_matching(route=route, status="dead", user=user, dry_run=False) == 20
    wait_for(lambda: status_counts(events) == {"succeeded": 20}, what="20 succeeded after replay")
    tally = count_and_report("c: after the fix and a replay", events, "testapp.flaky")
    assert tally["delivered_once"] == 20
    replay = Replay.objects.get()
    assert (replay.username, replay.delivery_count, replay.deliveries.count()) == ("operator", 20, 20)
    assert set(Delivery.objects.filter(event__in=events).values_list("attempts", flat=True)) == {4}


def test_c2_handler_over_its_time_limit_5_events_interrupted_each_attempt_then_5_dead(
    queue_name, worker_process
):
    factories.route(
        factories.event_type("fault.slow"),
        "testapp.slow",
        queue=queue_name,
        max_attempts=2,
        time_limit_ms=300,
        **NO_BREAKER,
    )
    worker_process()
    events = emit_many([{"type": "fault.slow", "data": {"sleep": 5}} for _ in range(5)])
    wait_for(lambda: status_counts(events) == {"dead": 5}, timeout=20, what="5 dead")
    tally = count_and_report("c2: time limit", events, "testapp.slow")
    assert tally["dead"] == 5
    errors = set(Attempt.objects.filter(delivery__event__in=events).values_list("error", flat=True))
    assert errors == {"TimeLimitExceeded: the attempt ran longer than the route's 300 ms."}
    assert Attempt.objects.filter(delivery__event__in=events).count() == 10
    assert max(Attempt.objects.values_list("duration_ms", flat=True)) < 2500  # cut short, not 5 s


def test_c3_a_slow_delivery_in_a_batch_uses_its_own_time_limit_not_the_others(queue_name, worker_process):
    factories.route(
        factories.event_type("fault.slow"),
        "testapp.slow",
        queue=queue_name,
        max_attempts=1,
        time_limit_ms=1500,
    )
    worker_process(threads=1)
    # One batch message: 0.6 s + 0.6 s + (cut at its limit) + 0.6 s + 0.6 s, far over 1.5 s together.
    sleeps = [0.6, 0.6, 30, 0.6, 0.6]
    events = emit_many([{"type": "fault.slow", "data": {"sleep": s}} for s in sleeps])
    wait_for(
        lambda: status_counts(events) == {"succeeded": 4, "dead": 1}, timeout=30, what="4 succeeded, 1 dead"
    )
    slow = Delivery.objects.get(event=events[2])
    assert slow.status == "dead"
    assert slow.last_error == "TimeLimitExceeded: the attempt ran longer than the route's 1500 ms."
    assert 1500 <= slow.duration_ms < 4000
    # One worker thread ran them one after another, each within its own limit.
    assert Delivery.objects.filter(event__in=events).values("worker").distinct().count() == 1


def test_d_4_malformed_messages_3_dead_lettered_1_unknown_id_logged_20_good_events_delivered(
    queue_name, worker_process
):
    factories.route(factories.event_type("fault.bad"), "testapp.record", queue=queue_name)
    worker = worker_process()
    first = emit_many([{"type": "fault.bad", "data": {"n": n}} for n in range(10)])
    wait_for(lambda: status_counts(first) == {"succeeded": 10}, what="first 10 succeeded")

    bad_bodies = [
        b"this is not json",
        b'{"queue_name": "%s", "actor_name": "eventhub.deliver", "args": ["not-an-id"], "kwargs": {},'
        b' "options": {}, "message_id": "m1", "message_timestamp": 0}' % queue_name.encode(),
        b'{"queue_name": "%s", "actor_name": "nobody.declared.this", "args": [], "kwargs": {},'
        b' "options": {}, "message_id": "m2", "message_timestamp": 0}' % queue_name.encode(),
        b'{"queue_name": "%s", "actor_name": "eventhub.deliver", "args": [987654321], "kwargs": {},'
        b' "options": {}, "message_id": "m3", "message_timestamp": 0}' % queue_name.encode(),
    ]
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for body in bad_bodies:
            channel.basic_publish(exchange="", routing_key=queue_name, body=body)
    finally:
        connection.close()

    second = emit_many([{"type": "fault.bad", "data": {"n": n}} for n in range(10, 20)])
    wait_for(lambda: status_counts(second) == {"succeeded": 10}, what="next 10 succeeded")
    wait_for(lambda: xq_depth(queue_name) == 3, timeout=10, what="3 dead-lettered")
    assert worker.poll() is None, "the worker died"
    log = log_of(worker)
    assert "Failed to decode message" in log
    assert "dead-lettered: expected a delivery id or a list of 1 to 10000 of them, got 'not-an-id'" in log
    assert "undefined actor 'nobody.declared.this'. Moving it to the DLQ" in log  # Dramatiq's own check
    assert "Delivery 987654321 does not exist" in log
    print(f"\n[d: malformed] published=4 dead_lettered={xq_depth(queue_name)} unknown_id_logged=1")
    tally = count_and_report("d: malformed messages", first + second, "testapp.record")
    assert tally["delivered_once"] == 20


def test_e_process_killed_between_commit_and_send_25_events_relay_in_worker_delivers_25(
    queue_name, worker_process
):
    factories.route(factories.event_type("fault.die"), "testapp.record", queue=queue_name)
    died = manage(
        "emit_then_die", "fault.die", "--count", "25", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    died.wait(60)
    assert died.returncode == -signal.SIGKILL
    events = list(Event.objects.filter(type="fault.die"))
    assert len(events) == 25 and status_counts(events) == {"pending": 25}  # committed, never sent

    # The relay inside eventhub_worker picks them up after its grace period.
    worker = worker_process(
        relay=True, EVENTHUB_RELAY_AFTER_SECONDS="1", EVENTHUB_RELAY_INTERVAL_SECONDS="0.5"
    )
    wait_for(lambda: status_counts(events) == {"succeeded": 25}, what="25 succeeded")
    tally = count_and_report("e: killed between commit and send", events, "testapp.record")
    assert tally["delivered_once"] == 25
    # All 25 went through the relay, in one pass or in several (those younger than its
    # grace period at its first pass wait for the next).
    passes = re.findall(r"Relay sent (\d+) of (\d+) pending deliveries", log_of(worker))
    assert passes and all(sent == found for sent, found in passes), passes
    assert sum(int(sent) for sent, _ in passes) == 25, passes


def test_f_sigterm_with_4_in_flight_of_10_events_finishes_them_exits_cleanly_rest_delivered_after(
    queue_name, worker_process
):
    factories.route(factories.event_type("fault.term"), "testapp.slow", queue=queue_name)
    worker = worker_process(threads=4, relay=True)
    # Emitted one by one: a message each, four at a time in flight.
    events = [emit("fault.term", data={"sleep": 1.5}) for _ in range(10)]
    # Generous: the worker process starts first (slow on a loaded machine).
    wait_for(lambda: status_counts(events)["running"] == 4, timeout=60, what="4 running")

    # To the main process only, as a process manager does (Docker; systemd with KillMode=mixed):
    # Dramatiq forwards it, and a second SIGTERM would tell its workers to quit at once.
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(30) == 0, log_of(worker)[-3000:]
    finished = status_counts(events)
    assert finished["succeeded"] == 4 and finished["running"] == 0, finished
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing left behind: workers and the relay all exited
        os.killpg(worker.pid, 0)
    assert "Worker has been shut down." in log_of(worker)

    worker_process(threads=4)
    wait_for(lambda: status_counts(events) == {"succeeded": 10}, what="10 succeeded")
    tally = count_and_report("f: SIGTERM", events, "testapp.slow")
    assert tally["delivered_once"] == 10
    assert not Attempt.objects.filter(error=INTERRUPTED).exists()  # nothing was cut off


def test_f2_sigterm_in_the_middle_of_a_batch_finishes_the_delivery_in_hand_and_gives_back_the_rest(
    queue_name, worker_process
):
    factories.route(factories.event_type("fault.term"), "testapp.slow", queue=queue_name)
    worker = worker_process(threads=1)
    events = emit_many([{"type": "fault.term", "data": {"sleep": 1}} for _ in range(6)])  # one message
    # Generous: the worker process starts first (slow on a loaded machine).
    wait_for(
        lambda: status_counts(events)["succeeded"] >= 1, timeout=60, what="the first of the batch succeeded"
    )

    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(30) == 0, log_of(worker)[-3000:]
    left = status_counts(events)
    assert left["running"] == 0 and left["succeeded"] < 6, left  # not the whole batch: 6 s of work

    worker_process(threads=1)
    wait_for(lambda: status_counts(events) == {"succeeded": 6}, timeout=60, what="6 succeeded")
    tally = count_and_report("f2: SIGTERM mid-batch", events, "testapp.slow")
    assert tally["delivered_once"] == 6
    assert set(Delivery.objects.filter(event__in=events).values_list("attempts", flat=True)) == {1}


def test_b2_worker_sigkilled_in_the_middle_of_a_batch_each_claimed_delivery_runs_again(
    queue_name, worker_process
):
    factories.route(factories.event_type("fault.kill"), "testapp.slow", queue=queue_name, max_attempts=3)
    worker = worker_process(threads=1)
    events = emit_many([{"type": "fault.kill", "data": {"sleep": 1}} for _ in range(4)])  # one message
    wait_for(lambda: status_counts(events) == {"running": 4}, timeout=60, what="the batch claimed")

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    worker_process(threads=1)  # RabbitMQ redelivers the batch message
    wait_for(lambda: status_counts(events) == {"succeeded": 4}, timeout=60, what="4 succeeded")
    tally = count_and_report("b2: worker SIGKILLed mid-batch", events, "testapp.slow")
    assert tally["delivered_once"] == 4
    for delivery in Delivery.objects.filter(event__in=events):
        # Claimed together, so each counts the cut-off run (documented in docs/architecture.md).
        history = list(delivery.attempt_log.values_list("number", "succeeded", "error"))
        assert history == [(1, False, INTERRUPTED), (2, True, "")]
