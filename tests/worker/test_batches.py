"""Batch messages: deliveries emitted together travel in one message, run and recorded together.

Real RabbitMQ and real Dramatiq worker threads; the messages are the ones emit_many sends.
"""

import threading
import time
from dataclasses import replace

import dramatiq
import pytest

from eventhub import emit_many
from eventhub.models import Attempt, Delivery
from eventhub.outbox import background
from eventhub.outbox.message import DELIVER_ACTOR, Outgoing, message_for
from eventhub.outbox.relay import relay_once
from tests.conftest import delete_queues
from tests.support import factories
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def statuses(route) -> list[str]:
    return list(Delivery.objects.filter(route=route).order_by("pk").values_list("status", flat=True))


def test_a_batch_message_runs_every_delivery_and_records_each(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name], threads=4)

    events = emit_many([{"type": "order.paid", "data": {"n": n}} for n in range(20)])

    wait_for(lambda: statuses(route) == ["succeeded"] * 20, what="20 succeeded")
    assert sorted(c["data"]["n"] for c in calls) == list(range(20))
    rows = Delivery.objects.filter(route=route)
    assert set(rows.values_list("attempts", flat=True)) == {1}
    assert all(d.finished_at and d.duration_ms is not None for d in rows)
    assert Attempt.objects.filter(delivery__route=route, succeeded=True).count() == 20
    # One message: one worker thread ran them all, in the order they were emitted.
    assert rows.values("worker").distinct().count() == 1
    assert [c["id"] for c in calls] == [str(e.id) for e in events]


def test_one_failing_in_a_batch_is_retried_alone_and_the_others_succeed_once(
    rabbitmq_broker, queue_name, run_worker, handler
):
    failed_once: set[int] = set()
    released = threading.Event()

    def fail_first_time_for_3(envelope):
        n = envelope["data"]["n"]
        if n == 3 and n not in failed_once:
            failed_once.add(n)
            raise ValueError("card declined")
        if n == 3:
            released.set()

    calls, name = handler(fail_first_time_for_3)
    # A long backoff: the others must not wait for it.
    route = factories.route(
        factories.event_type("order.paid"), name, queue=queue_name, min_backoff_ms=1500, max_backoff_ms=1500
    )
    run_worker([queue_name], threads=2)

    emit_many([{"type": "order.paid", "data": {"n": n}} for n in range(6)])

    wait_for(lambda: statuses(route).count("succeeded") == 5, what="the other five succeeded")
    failing = Delivery.objects.get(route=route, event__data__n=3)
    assert failing.status == "retrying" and not released.is_set()  # still waiting out its backoff
    wait_for(lambda: statuses(route) == ["succeeded"] * 6, what="the failed one succeeded on its retry")
    counts = {n: sum(1 for c in calls if c["data"]["n"] == n) for n in range(6)}
    assert counts == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    failing.refresh_from_db()
    assert list(Attempt.objects.filter(delivery=failing).values_list("number", "succeeded", "error")) == [
        (1, False, "ValueError: card declined"),
        (2, True, ""),
    ]
    assert set(Delivery.objects.exclude(pk=failing.pk).values_list("attempts", flat=True)) == {1}


def test_a_redelivered_batch_message_skips_those_that_succeeded(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name])
    emit_many([{"type": "order.paid", "data": {"n": n}} for n in range(3)])
    wait_for(lambda: statuses(route) == ["succeeded"] * 3, what="3 succeeded")
    first, second, third = Delivery.objects.filter(route=route).order_by("pk")
    # As a worker killed in the middle of the batch leaves the last one: claimed, no outcome.
    Attempt.objects.filter(delivery=third).delete()
    Delivery.objects.filter(pk=third.pk).update(status="running", finished_at=None)
    del calls[:]

    # RabbitMQ redelivers the unacknowledged batch message.
    batch = replace(Outgoing.for_route(first.pk, route), batch=(second.pk, third.pk))
    rabbitmq_broker.enqueue(message_for(batch))
    wait_for(lambda: Attempt.objects.filter(delivery=third).count() == 2, what="the third run again")
    wait_for(lambda: statuses(route) == ["succeeded"] * 3, what="3 succeeded again")

    assert [c["data"]["n"] for c in calls] == [2]
    assert [Delivery.objects.get(pk=d.pk).attempts for d in (first, second, third)] == [1, 1, 2]
    assert list(Attempt.objects.filter(delivery=third).values_list("number", "succeeded")) == [
        (1, False),  # the interrupted run, recorded by the claim that found it running
        (2, True),
    ]


def test_a_batch_with_ordered_deliveries_runs_each_key_in_emit_order(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(
        factories.event_type("order.changed"), name, queue=queue_name, ordering_key="{data.order}"
    )
    keys = ["a", "a", "b", "a", "b", "c"]
    # An ordered route's deliveries travel alone; a batch message holding some (sent by an earlier
    # version, or by hand as here) still runs each key in order.
    emit_many([{"type": "order.changed", "data": {"order": k, "n": n}} for n, k in enumerate(keys)])
    emit_many([{"type": "order.changed", "data": {"order": "a", "n": 6}}, {"type": "order.changed"}])
    background.flush()
    delete_queues([queue_name])
    first, *rest = Delivery.objects.filter(route=route).order_by("pk")
    rabbitmq_broker.enqueue(
        message_for(replace(Outgoing.for_route(first.pk, route), batch=tuple(d.pk for d in rest)))
    )
    run_worker([queue_name], threads=4)

    wait_for(lambda: statuses(route) == ["succeeded"] * 8, what="8 succeeded")
    for key in "abc":
        ran = [c["data"]["n"] for c in calls if (c["data"] or {}).get("order") == key]
        assert ran == sorted(ran), (key, ran)
    assert len(calls) == 8
    assert set(Delivery.objects.filter(route=route).values_list("attempts", flat=True)) == {1}


def test_a_message_of_one_delivery_in_the_format_of_earlier_versions_still_runs(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    [event] = emit_many([{"type": "order.paid", "data": {"n": 1}}])
    delivery = Delivery.objects.get(event=event)
    # Options as an older version sent them (none of eventhub's), the id as the only argument.
    rabbitmq_broker.enqueue(
        dramatiq.Message(
            queue_name=queue_name, actor_name=DELIVER_ACTOR, args=(delivery.pk,), kwargs={}, options={}
        )
    )
    run_worker([queue_name])
    wait_for(lambda: statuses(route) == ["succeeded"], what="succeeded")
    assert [c["id"] for c in calls] == [str(event.id)]  # once, though two messages named it


def test_the_relay_sends_deliveries_of_a_batch_whose_send_failed(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    emit_many([{"type": "order.paid", "data": {"n": n}} for n in range(4)])
    wait_for(lambda: statuses(route) == ["queued"] * 4, what="4 queued")
    # As if the batch message had never been confirmed: pending, and the message gone.
    Delivery.objects.filter(route=route).update(status="pending", queued_at=None)
    rabbitmq_broker.flush(queue_name)

    assert relay_once(after_seconds=0) == 4
    run_worker([queue_name])
    wait_for(lambda: statuses(route) == ["succeeded"] * 4, what="4 succeeded")
    assert sorted(c["data"]["n"] for c in calls) == [0, 1, 2, 3]


def test_a_slow_routes_batch_spreads_over_the_threads_each_delivery_attempted_once(
    rabbitmq_broker, queue_name, run_worker, handler
):
    threads_seen: set[str] = set()

    def slow(envelope):
        threads_seen.add(threading.current_thread().name)
        time.sleep(0.3)

    calls, name = handler(slow)
    route = factories.route(factories.event_type("report.built"), name, queue=queue_name)
    run_worker([queue_name], threads=4)

    started = time.monotonic()
    emit_many([{"type": "report.built", "data": {"n": n}} for n in range(12)])  # one message of 12
    wait_for(lambda: statuses(route) == ["succeeded"] * 12, what="12 succeeded", timeout=30)
    took = time.monotonic() - started

    # On one thread the batch takes 12 x 0.3 s = 3.6 s; spread over 4 threads, about a quarter of that.
    assert took < 2.6, f"the batch did not spread: {took:.1f} s"
    assert len(threads_seen) >= 3
    assert sorted(c["data"]["n"] for c in calls) == list(range(12))
    # Handing the rest back undid their claims: every delivery counts exactly the one attempt it made.
    assert set(Delivery.objects.filter(route=route).values_list("attempts", flat=True)) == {1}
    assert Attempt.objects.filter(delivery__route=route).count() == 12
