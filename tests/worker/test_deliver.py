"""Delivery end to end: emit -> RabbitMQ -> a real Dramatiq worker -> handler -> recorded outcome."""

import time

import pytest

from eventhub import broker as brokers
from eventhub import emit
from eventhub.models import Attempt, Delivery
from eventhub.outbox.message import Outgoing, message_for
from tests.support import factories
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_emitted_event_reaches_the_handler_through_rabbitmq(rabbitmq_broker, queue_name, run_worker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 42}, subject="order/42")

    delivery = Delivery.objects.get(event=event, route=route)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded")
    delivery.refresh_from_db()
    assert calls == [event.envelope]
    assert calls[0]["subject"] == "order/42" and calls[0]["data"] == {"order_id": 42}
    assert delivery.attempts == 1 and delivery.last_error == ""
    assert delivery.worker and delivery.duration_ms is not None and delivery.finished_at
    assert Attempt.objects.get(delivery=delivery).succeeded


def test_a_redelivered_message_does_not_run_the_handler_again(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name])
    event = emit("order.paid", data={"order_id": 1})
    delivery = Delivery.objects.get(event=event)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded")

    # RabbitMQ redelivers a message whose ack was lost: the same delivery id arrives again.
    rabbitmq_broker.enqueue(message_for(Outgoing.for_route(delivery.pk, route)))
    rabbitmq_broker.join(queue_name, timeout=10_000)
    time.sleep(0.2)

    assert len(calls) == 1
    assert Attempt.objects.filter(delivery=delivery).count() == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


def test_a_failing_handler_is_retried_then_dead_with_its_error(
    rabbitmq_broker, queue_name, run_worker, handler
):
    def explode(envelope):
        raise ValueError("card declined")

    calls, name = handler(explode)
    factories.route(factories.event_type("order.paid"), name, queue=queue_name, max_attempts=3)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 1})

    delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="dead").first())
    assert delivery.attempts == 3 and len(calls) == 3
    assert delivery.last_error == "ValueError: card declined"
    assert list(Attempt.objects.filter(delivery=delivery).values_list("number", "succeeded")) == [
        (1, False),
        (2, False),
        (3, False),
    ]


def test_a_route_naming_an_unknown_handler_is_dead_at_once(rabbitmq_broker, queue_name, run_worker):
    factories.route(factories.event_type("order.paid"), "nobody.registered.this", queue=queue_name)
    run_worker([queue_name])
    event = emit("order.paid", data={})
    delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="dead").first())
    assert delivery.attempts == 1
    assert "No handler is registered as 'nobody.registered.this'" in delivery.last_error


def test_embedded_broker_delivers_in_process(stub_broker, handler):
    calls, name = handler()
    factories.route(factories.event_type("order.paid"), name)
    event = emit("order.paid", data={"n": 1})
    brokers.drain_embedded()
    assert [c["id"] for c in calls] == [str(event.id)]
    assert Delivery.objects.get(event=event).status == "succeeded"
