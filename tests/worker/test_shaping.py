"""Transforms on real deliveries: each delivery is sent with the transform version it was made with."""

import json

import pytest

from eventhub import emit
from eventhub.destinations.signing import verify
from eventhub.models import Delivery, Route
from eventhub.worker.deliver import deliver
from tests.destinations.test_amqp import PlainConsumer
from tests.support import factories


@pytest.mark.django_db
def test_a_delivery_is_sent_with_the_version_it_was_made_with(stub_broker, webhook_receiver):
    hook = webhook_receiver()
    route = factories.route(
        factories.event_type("order.paid"),
        hook.url,
        destination_kind="webhook",
        transform={"body": "data", "fields": {"order": "order_id"}, "headers": {"X-Tenant": "acme"}},
    )
    before = emit("order.paid", data={"order_id": 1, "card": "4242"})
    route = Route.objects.get(pk=route.pk)
    route.transform = {"fields": {"id": "id", "order": "data.order_id"}}
    route.save()
    after = emit("order.paid", data={"order_id": 2, "card": "4242"})

    old, new = (Delivery.objects.get(event=e) for e in (before, after))
    assert (old.transform_version, new.transform_version) == (1, 2)
    deliver(old.pk)
    deliver(new.pk)
    first, second = hook.requests
    assert json.loads(first.body) == {"order": 1} and first.headers["X-Tenant"] == "acme"
    assert json.loads(second.body) == {"id": str(after.pk), "order": 2} and "X-Tenant" not in second.headers
    for request in (first, second):  # the signature covers the body actually sent
        verify(secret=route.secret, headers=request.headers, body=request.body)


@pytest.mark.django_db
def test_a_route_without_a_transform_sends_the_envelope(stub_broker, webhook_receiver):
    hook = webhook_receiver()
    factories.route(factories.event_type("order.paid"), hook.url, destination_kind="webhook")
    event = emit("order.paid", data={"order_id": 1})
    delivery = Delivery.objects.get(event=event)
    assert delivery.transform_version == 0
    deliver(delivery.pk)
    assert json.loads(hook.requests[0].body) == event.envelope


@pytest.mark.django_db(transaction=True)
def test_a_reshaped_amqp_message_is_plain_json(rabbitmq_broker, exchange_name, queue_name):
    consumer = PlainConsumer(exchange_name, "#")
    route = factories.route(
        factories.event_type("order.paid"),
        exchange_name,
        destination_kind="amqp",
        queue=queue_name,
        transform={"body": "data"},
    )
    event = emit("order.paid", data={"order_id": 5})
    deliver(Delivery.objects.get(event=event, route=route).pk)
    try:
        _, properties, body = consumer.next()
    finally:
        consumer.close()
    assert body == {"order_id": 5}
    assert properties.content_type == "application/json"
    assert (properties.message_id, properties.type) == (str(event.pk), "order.paid")
