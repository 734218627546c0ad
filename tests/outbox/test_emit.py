"""emit() and emit_many(): validation, the outbox rows, and sending only after commit."""

import json

import pika
import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from eventhub import emit, emit_many
from eventhub.errors import EmitError, InvalidEventData, UnknownEventType
from eventhub.models import Delivery, Event
from eventhub.outbox import background
from tests.conftest import RABBITMQ_URL, delete_queues, queue_depth
from tests.support import factories

SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number", "minimum": 0}},
    "required": ["order_id"],
}


def queued_args(name: str) -> list:
    """The ``args`` of every message waiting in queue ``name``, oldest first (left in the queue)."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel, found = connection.channel(), []
        while True:
            method, _, body = channel.basic_get(name, auto_ack=False)
            if method is None:
                return found
            found.append(json.loads(body)["args"])
    finally:
        connection.close()  # unacknowledged: the messages go back to the queue


@pytest.mark.django_db
def test_emit_writes_event_and_one_delivery_per_matching_enabled_route(stub_broker):
    paid = factories.event_type("order.paid", schema=SCHEMA)
    big = factories.route(paid, "h", filter={"data": {"amount": [{"numeric": [">=", 100]}]}})
    every = factories.route(paid, "h")
    factories.route(paid, "h", enabled=False)

    event = emit("order.paid", data={"order_id": 42, "amount": 150}, subject="order/42")

    assert event.type == "order.paid" and event.subject == "order/42"
    assert event.envelope["specversion"] == "1.0" and event.envelope["id"] == str(event.id)
    assert set(Delivery.objects.filter(event=event).values_list("route", flat=True)) == {big.pk, every.pk}
    small = emit("order.paid", data={"order_id": 43, "amount": 5})
    assert list(small.deliveries.values_list("route", flat=True)) == [every.pk]


@pytest.mark.django_db
def test_schema_mismatch_is_refused_with_the_schemas_message_and_stores_nothing(stub_broker):
    factories.route(factories.event_type("order.paid", schema=SCHEMA), "h")
    with pytest.raises(InvalidEventData) as caught:
        emit("order.paid", data={"order_id": "forty-two"})
    assert "'forty-two' is not of type 'integer'" in str(caught.value)
    assert caught.value.path == "order_id"
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0


@pytest.mark.django_db
def test_unknown_and_inactive_types_are_refused(stub_broker):
    factories.event_type("user.deleted", active=False)
    with pytest.raises(UnknownEventType, match="Unknown event type 'no.such'"):
        emit("no.such", data={})
    with pytest.raises(UnknownEventType, match="inactive"):
        emit("user.deleted", data={})
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_emit_many_is_all_or_nothing(stub_broker):
    factories.route(factories.event_type("order.paid", schema=SCHEMA), "h")
    with pytest.raises(InvalidEventData):
        emit_many([{"type": "order.paid", "data": {"order_id": 1}}, {"type": "order.paid", "data": {}}])
    assert Event.objects.count() == 0
    events = emit_many([{"type": "order.paid", "data": {"order_id": i}} for i in range(25)])
    assert len(events) == 25 and Delivery.objects.count() == 25
    with pytest.raises(EmitError, match="Unknown event fields: colour"):
        emit_many([{"type": "order.paid", "data": {"order_id": 1}, "colour": "red"}])


@pytest.mark.django_db(transaction=True)
def test_emit_in_a_rolled_back_transaction_sends_nothing(rabbitmq_broker, queue_name):
    paid = factories.event_type("order.paid")
    factories.route(paid, "h", queue=queue_name)

    with pytest.raises(RuntimeError), transaction.atomic():
        emit("order.paid", data={"order_id": 1})
        raise RuntimeError("the caller's own write failed")

    assert Event.objects.count() == 0
    assert queue_depth(queue_name) == 0


@pytest.mark.django_db(transaction=True)
def test_commit_sends_deliveries_emitted_together_in_one_confirmed_message(rabbitmq_broker, queue_name):
    paid = factories.event_type("order.paid")
    factories.route(paid, "h", queue=queue_name)
    factories.route(paid, "h2", queue=queue_name)

    with transaction.atomic():
        emit("order.paid", data={"order_id": 1})
        assert queue_depth(queue_name) == 0  # nothing leaves before commit

    assert background.flush()  # sent by the background sender, soon after the commit
    # One route's deliveries travel together; two routes' one each: a message of one delivery apiece.
    assert sorted(queued_args(queue_name)) == [
        [pk] for pk in sorted(Delivery.objects.values_list("pk", flat=True))
    ]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


@pytest.mark.django_db(transaction=True)
@override_settings(EVENTHUB={**settings.EVENTHUB, "MESSAGE_BATCH_MAX": 2})
def test_emit_many_sends_a_message_per_queue_and_cap_and_a_lone_delivery_as_before(
    rabbitmq_broker, queue_name
):
    other_queue = f"{queue_name}-b"
    paid = factories.event_type("order.paid")
    to_a = factories.route(paid, "h", queue=queue_name)
    to_b = factories.route(paid, "h2", queue=other_queue, filter={"data": {"order_id": [1]}})
    try:
        emit_many([{"type": "order.paid", "data": {"order_id": i}} for i in range(1, 6)])
        assert background.flush()

        a = list(Delivery.objects.filter(route=to_a).order_by("pk").values_list("pk", flat=True))
        b = list(Delivery.objects.filter(route=to_b).values_list("pk", flat=True))
        # Five for the first route: two batches of two, then one alone in today's format.
        assert queued_args(queue_name) == [[a[0:2]], [a[2:4]], [a[4]]]
        assert queued_args(other_queue) == [b]
        assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
    finally:
        delete_queues([other_queue])


@pytest.mark.django_db(transaction=True)
def test_unreachable_broker_keeps_the_event_and_leaves_deliveries_pending(queue_name):
    from eventhub import broker as brokers

    brokers.setup(url="amqp://guest:guest@127.0.0.1:1/%2F")  # nothing listens on port 1
    try:
        paid = factories.event_type("order.paid")
        factories.route(paid, "h", queue=queue_name)
        event = emit("order.paid", data={"order_id": 1})
        assert background.flush()  # the background send has failed
    finally:
        brokers.setup()
    assert Event.objects.filter(pk=event.pk).exists()
    assert list(Delivery.objects.values_list("status", flat=True)) == ["pending"]


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_writes_everything_then_sends_confirmed(rabbitmq_broker, queue_name):
    paid = factories.event_type("order.paid")
    first = factories.route(paid, "h", queue=queue_name)
    second = factories.route(paid, "h2", queue=queue_name)
    silent = factories.event_type("order.viewed")  # no routes: stored, nothing sent

    events = emit_many(
        [{"type": "order.paid", "data": {"order_id": i}} for i in range(30)] + [{"type": "order.viewed"}]
    )

    assert background.flush()
    # The 60 deliveries, emitted together through two routes: one batch message per route.
    messages = queued_args(queue_name)
    assert len(messages) == 2
    for route, [carried] in zip(
        (first, second), sorted(messages, key=lambda args: min(args[0])), strict=True
    ):
        assert carried == list(
            Delivery.objects.filter(route=route).order_by("pk").values_list("pk", flat=True)
        )
        assert len(carried) == 30
    stored = Event.objects.in_bulk([e.pk for e in events])
    assert len(stored) == 31 and all(stored[e.pk].created_at for e in events)
    assert stored[events[-1].pk].event_type == silent
    rows = Delivery.objects.filter(event__in=events)
    assert sorted(rows.values_list("route", flat=True)) == sorted([first.pk, second.pk] * 30)
    assert set(rows.values_list("status", flat=True)) == {"queued"}
    with pytest.raises(ValueError, match="immutable"):
        events[0].save()


@pytest.mark.django_db(transaction=True)
def test_an_inactive_type_is_refused_even_with_enabled_routes(stub_broker):
    factories.route(factories.event_type("order.paid", active=False), "h")
    with pytest.raises(UnknownEventType, match="inactive"):
        emit("order.paid", data={})
    assert Event.objects.count() == 0
