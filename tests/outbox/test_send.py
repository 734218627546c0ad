"""eventhub.outbox.send and .message: one confirmed message per delivery, and pending when not confirmed."""

import json

import pika
import pytest

from eventhub.models import Delivery
from eventhub.outbox import Outgoing, message_for, send_deliveries
from tests.conftest import RABBITMQ_URL, delete_queues
from tests.support import factories

pytestmark = pytest.mark.django_db


def deliveries(queue: str, n: int) -> list[Delivery]:
    route = factories.route(factories.event_type(), "test.nobody", queue=queue)
    return list(Delivery.objects.filter(pk__in=[d.pk for d in factories.pending_deliveries(route, n)]))


def received(queue: str) -> list[dict]:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel, bodies = connection.channel(), []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(json.loads(body))
    finally:
        connection.close()


def test_the_message_carries_the_delivery_id_and_its_routes_id_backoff_and_time_limit_only():
    route = factories.route(
        factories.event_type(), "x", min_backoff_ms=7, max_backoff_ms=70, time_limit_ms=700
    )
    message = message_for(Outgoing.for_route(42, route))
    assert (message.queue_name, message.actor_name, message.args, message.kwargs) == (
        route.queue,
        "eventhub.deliver",
        (42,),
        {},
    )
    # The route's id lets the worker check the route's limits before it loads the delivery (issue 18).
    assert message.options == {
        "min_backoff": 7,
        "max_backoff": 70,
        "time_limit": 700,
        "eventhub_route": route.pk,
    }


def test_confirmed_sends_mark_the_deliveries_queued(rabbitmq_broker, queue_name):
    rows = deliveries(queue_name, 3)
    assert send_deliveries([Outgoing.for_route(d.pk, d.route) for d in rows]) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
    assert sorted(m["args"][0] for m in received(queue_name)) == sorted(d.pk for d in rows)


def test_a_message_no_queue_takes_is_not_confirmed_and_its_delivery_stays_pending(
    rabbitmq_broker, queue_name
):
    [first, second] = deliveries(queue_name, 2)
    assert send_deliveries([Outgoing.for_route(first.pk, first.route)]) == 1
    delete_queues([queue_name])  # deleted behind the broker's back: the next publish comes back
    assert send_deliveries([Outgoing.for_route(second.pk, second.route)]) == 0
    assert Delivery.objects.get(pk=second.pk).status == "pending"
    # The returned message made the broker declare the queue again: the relay's next send goes through.
    assert send_deliveries([Outgoing.for_route(second.pk, second.route)]) == 1
    assert Delivery.objects.get(pk=second.pk).status == "queued"


def test_a_broker_that_cannot_be_reached_leaves_every_delivery_pending(queue_name):
    from eventhub import broker

    broker.setup(url="amqp://guest:guest@127.0.0.1:1/%2F")  # nothing listens on port 1
    try:
        rows = deliveries(queue_name, 2)
        assert send_deliveries([Outgoing.for_route(d.pk, d.route) for d in rows]) == 0
        assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    finally:
        broker.setup()


def test_an_empty_send_does_nothing(stub_broker):
    assert send_deliveries([]) == 0


@pytest.mark.django_db(transaction=True)
def test_marking_queued_skips_a_row_a_worker_is_claiming_instead_of_waiting_for_its_commit():
    """A worker's claim holds the row until its batch commits (with outcomes: a WAL flush).

    The sender must not wait for that: the mark is bookkeeping, and the claim makes
    the row running anyway. Waiting held up every message emitted meanwhile.
    """
    import threading

    from django.db import connection, connections

    from eventhub.outbox import mark_queued

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    claimed, other = deliveries("q-mark", 2)
    locked, release = threading.Event(), threading.Event()

    def worker_claiming() -> None:
        with connections["default"].cursor() as cursor:  # this thread's own connection
            cursor.execute("BEGIN")
            cursor.execute("SELECT 1 FROM eventhub_delivery WHERE id = %s FOR UPDATE", [claimed.pk])
            locked.set()
            release.wait(10)
            cursor.execute("UPDATE eventhub_delivery SET status = 'running' WHERE id = %s", [claimed.pk])
            cursor.execute("COMMIT")
        connections["default"].close()

    thread = threading.Thread(target=worker_claiming)
    thread.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # without SKIP LOCKED the mark would wait, then fail
        mark_queued([claimed.pk, other.pk])
        assert Delivery.objects.get(pk=other.pk).status == "queued"
        assert Delivery.objects.get(pk=claimed.pk).status == "pending"  # skipped, not waited for
    finally:
        release.set()
        thread.join(10)
    assert Delivery.objects.get(pk=claimed.pk).status == "running"
