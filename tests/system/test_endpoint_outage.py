"""Fault test: a webhook endpoint down long enough for its route's circuit to open, then up again.

5,000 events go to a route whose receiver is down (connection refused); a second route,
on the same queue and the same worker process, keeps delivering to a healthy receiver
meanwhile. The broken route's circuit opens after a few failures and its deliveries are
held, not attempted; when the receiver is back, a probe closes the circuit and the
releaser (in the worker's upkeep process) sends the held deliveries at the route's
release rate. Then everything is counted: every event delivered once in effect (by its
``webhook-id``), none dead because of the outage, the rate respected (measured from the
receiver's own timestamps), the healthy route unaffected.

The outage is ~20 s rather than a minute (the breaker opens within a second; the shape is
the same: down, open, held, up, probe, release). Run alone with ``pytest -m faults -s``.
"""

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection

from eventhub import emit_many
from eventhub.models import Delivery, RouteHealthChange
from eventhub.outbox import background
from tests.support import factories
from tests.support.http_receivers import Receiver
from tests.support.process import command_env, start_worker
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]

EVENTS = 5_000
RELEASE_PER_SECOND = 100
OUTAGE_SECONDS = 20


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


@pytest.fixture
def worker(rabbitmq_broker, queue_name, tmp_path):
    """One ``manage.py eventhub_worker`` process (8 threads) with its upkeep: relay and releaser."""
    log = tmp_path / "worker.log"
    proc = start_worker(
        queue_name,
        threads=8,
        relay=True,
        # Kept connections, as in production (the tests' own processes open one per message), and a
        # quick relay for messages this process could not publish while its broker connection was busy.
        env=command_env(
            EVENTHUB_TEST_CONN_MAX_AGE="60",
            EVENTHUB_RELAY_AFTER_SECONDS="5",
            EVENTHUB_RELAY_INTERVAL_SECONDS="2",
        ),
        stdout=open(log, "w"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_path = log
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def most_in_a_window(times: list[float], seconds: float) -> int:
    """The most timestamps within any ``seconds`` (a sliding window)."""
    times, most, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="5,000 events through worker processes: SQLite serialises every write",
)
@pytest.mark.timeout(900)
def test_5000_events_to_an_endpoint_that_is_down_are_held_then_released_at_the_route_rate(
    queue_name, worker, webhook_receiver
):
    port = free_port()  # nothing listens there yet: the endpoint is down
    broken = factories.route(
        factories.event_type("outage.broken"),
        f"http://127.0.0.1:{port}/hook",
        destination_kind="webhook",
        queue=queue_name,
        min_backoff_ms=500,
        max_backoff_ms=2000,
        breaker_failures=5,
        probe_interval_seconds=3,
        release_per_second=RELEASE_PER_SECOND,
    )
    healthy_receiver = webhook_receiver(status=200)
    healthy = factories.route(
        factories.event_type("outage.healthy"),
        f"{healthy_receiver.url}/hook",
        destination_kind="webhook",
        queue=queue_name,
    )
    started = time.monotonic()

    stop = threading.Event()
    healthy_events: list = []

    def keep_emitting() -> None:  # the healthy route's traffic, 20 events a second throughout the outage
        while not stop.is_set():
            healthy_events.extend(emit_many([{"type": "outage.healthy", "data": {"n": len(healthy_events)}}]))
            time.sleep(0.05)

    emitter = threading.Thread(target=keep_emitting)
    emitter.start()
    try:
        events = []
        for start in range(0, EVENTS, 500):
            events += emit_many(
                [{"type": "outage.broken", "data": {"n": n}} for n in range(start, start + 500)]
            )
        wait_for(lambda: RouteHealthChange.objects.filter(route=broken, state="open").exists(), what="opened")
        try:
            wait_for(
                lambda: Delivery.objects.filter(route=broken, status="held").count() >= EVENTS - 10,
                timeout=300,  # seconds on a quiet machine; minutes when the cores are shared
                interval=0.5,
                what="the broken route's deliveries held",
            )
        except AssertionError:
            print(Counter(Delivery.objects.filter(route=broken).values_list("status", flat=True)))
            print(worker.log_path.read_text()[-5000:])
            raise
        held_at = time.monotonic() - started
        print(f"\n[endpoint outage] {EVENTS} held after {held_at:.0f} s")
        time.sleep(max(OUTAGE_SECONDS - held_at, 0))
    finally:
        stop.set()
        emitter.join()
    background.flush()
    # The healthy route kept delivering while the other endpoint was down (it is still down now).
    wait_for(
        lambda: Delivery.objects.filter(route=healthy, status="succeeded").count() == len(healthy_events),
        timeout=60,
        interval=0.5,
        what="the healthy route's deliveries all succeeded during the outage",
    )
    assert len(healthy_events) >= 100
    assert not Delivery.objects.filter(route=healthy).exclude(status="succeeded").exists()
    outage_attempts = Delivery.objects.filter(route=broken).exclude(attempts=0).count()

    receiver = Receiver(status=200).start(port=port)  # the endpoint is back
    up_at = time.time()
    try:
        wait_for(
            lambda: Delivery.objects.filter(route=broken, status="succeeded").count() == EVENTS,
            timeout=300,
            interval=0.5,
            what=f"all {EVENTS} of the broken route's deliveries succeeded",
        )
    finally:
        receiver.stop()
    total = time.monotonic() - started

    statuses = Counter(Delivery.objects.filter(route=broken).values_list("status", flat=True))
    assert statuses == {"succeeded": EVENTS}  # none dead because of the outage
    ids = Counter(r.headers.get("webhook-id") for r in receiver.requests)
    duplicated = sum(1 for n in ids.values() if n > 1)
    assert len(ids) == EVENTS and set(ids) == {
        f"{d.event_id}.{d.pk}" for d in Delivery.objects.filter(route=broken)
    }
    # The releaser's pace, from when each released delivery was handed to RabbitMQ (its queued_at):
    # never more than the route's rate in any second, give or take the fifth of a second of credit.
    released = [
        d.timestamp()
        for d in Delivery.objects.filter(
            route=broken, queued_at__gte=datetime.fromtimestamp(up_at - 5, UTC)
        ).values_list("queued_at", flat=True)
    ]
    release_most = most_in_a_window(released, 1.0)
    assert release_most <= RELEASE_PER_SECOND * 1.25 + 2, release_most
    # At the receiver (its own timestamps) the worker's scheduling adds jitter: a second may bunch up
    # what the one before missed, so the cap is checked over five seconds there.
    times = [r.at for r in receiver.requests]
    most, most_5s = most_in_a_window(times, 1.0), most_in_a_window(times, 5.0)
    spread = max(times) - min(times)
    assert most_5s <= 5 * RELEASE_PER_SECOND * 1.25, most_5s
    assert spread >= (EVENTS - 2 * RELEASE_PER_SECOND) / RELEASE_PER_SECOND, spread
    changes = list(
        RouteHealthChange.objects.filter(route=broken).order_by("pk").values_list("state", flat=True)
    )
    assert changes[0] == "open" and changes[-1] == "closed"
    print(
        f"\n[endpoint outage] {EVENTS} events, {len(healthy_events)} on the healthy route meanwhile; "
        f"{outage_attempts} deliveries attempted while down (the rest held unattempted); "
        f"first request {min(times) - up_at:.1f} s after the endpoint was back; released over {spread:.1f} s "
        f"({EVENTS / spread:.0f}/s, limit {RELEASE_PER_SECOND}/s); released at most {release_most} in one "
        f"second; received at most {most} in one second, {most_5s} in five; "
        f"{duplicated} sent twice; {len(changes)} state changes; {total:.0f} s in all"
    )
