"""The W3C trace context travels with an event.

From the request, the ingest call or the CloudEvent, to handlers (in the envelope),
webhooks (``traceparent`` header), AMQP messages (headers), and the event page.
"""

import json

import pytest
from django.test import Client

from eventhub import emit, tracing
from eventhub.ingest import tokens
from eventhub.models import Event
from eventhub.worker.deliver import deliver
from tests.destinations.test_amqp import PlainConsumer
from tests.support import factories

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
INGEST = "/api/events"


@pytest.fixture
def no_spans(settings):
    """These tests are about the context itself: spans off, so the event's own context goes out."""
    settings.EVENTHUB = {**getattr(settings, "EVENTHUB", {}), "TRACING_SPANS": False}


def ingest_token(stub_broker) -> str:
    factories.route(factories.event_type("order.paid"), "some.handler")
    return tokens.issue_token(name="t", event_types=["order.paid"], sources=["*"]).token


def cloudevent(**extra) -> str:
    return json.dumps(
        {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.paid", "data": {}, **extra}
    )


@pytest.mark.django_db
def test_an_event_emitted_outside_any_trace_has_none(stub_broker, no_spans):
    factories.event_type("order.paid")
    event = emit("order.paid", data={})
    assert (event.traceparent, event.trace_id) == ("", "")
    assert "traceparent" not in event.envelope


@pytest.mark.django_db
def test_emit_remembers_the_current_request_or_an_explicit_context(stub_broker, no_spans):
    factories.event_type("order.paid")
    with tracing.incoming(tracing.parse(TP, "vendor=x")):
        inside = emit("order.paid", data={})
        explicit = emit("order.paid", data={}, traceparent=OTHER)
    assert (inside.traceparent, inside.tracestate) == (TP, "vendor=x")
    assert inside.envelope["traceparent"] == TP and inside.envelope["tracestate"] == "vendor=x"
    assert explicit.traceparent == OTHER and explicit.tracestate == ""
    assert Event.objects.get(pk=inside.pk).trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.django_db
def test_ingest_takes_the_cloudevent_extension_first_then_the_calls_header(stub_broker, no_spans):
    token = ingest_token(stub_broker)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    kind = "application/cloudevents+json"
    client.post(INGEST, cloudevent(id="a", traceparent=OTHER), content_type=kind, HTTP_TRACEPARENT=TP)
    client.post(INGEST, cloudevent(id="b"), content_type=kind, HTTP_TRACEPARENT=TP, HTTP_TRACESTATE="k=v")
    client.post(INGEST, cloudevent(id="c", traceparent="not-a-traceparent"), content_type=kind)
    client.post(
        INGEST,
        "{}",
        content_type="application/json",
        HTTP_CE_SPECVERSION="1.0",
        HTTP_CE_ID="d",
        HTTP_CE_SOURCE="/shop",
        HTTP_CE_TYPE="order.paid",
        HTTP_CE_TRACEPARENT=OTHER,
    )
    stored = {e.external_id: (e.traceparent, e.tracestate) for e in Event.objects.all()}
    assert stored == {"a": (OTHER, ""), "b": (TP, "k=v"), "c": ("", ""), "d": (OTHER, "")}


@pytest.mark.django_db
def test_a_signal_hook_in_a_request_gives_its_event_the_requests_traceparent(
    stub_broker, admin_client, no_spans
):
    from shop.models import Customer

    factories.signal_hook(factories.event_type("customer.saved"), Customer)
    answer = admin_client.post(
        "/admin/shop/customer/add/", {"name": "Ada", "email": "ada@example.com"}, HTTP_TRACEPARENT=TP
    )
    assert answer.status_code == 302
    assert Event.objects.get(type="customer.saved").traceparent == TP
    # The middleware's context is the request's only: after it, emit is outside any trace again.
    assert tracing.incoming_context() is None


@pytest.mark.django_db
def test_the_event_page_shows_the_trace_id(stub_broker, admin_client, no_spans):
    factories.event_type("order.paid")
    event = emit("order.paid", data={}, traceparent=TP)
    page = admin_client.get(event.get_absolute_url()).content.decode()
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in page


@pytest.mark.django_db
def test_handlers_and_webhooks_receive_the_context(stub_broker, handler, webhook_receiver, no_spans):
    calls, name = handler()
    hook = webhook_receiver()
    paid = factories.event_type("order.paid")
    factories.route(paid, name)
    factories.route(paid, hook.url, destination_kind="webhook", name="hook")
    event = emit("order.paid", data={"n": 1}, traceparent=TP, tracestate="vendor=x")
    for delivery in event.deliveries.all():
        deliver(delivery.pk)
    assert calls[0]["traceparent"] == TP and calls[0]["tracestate"] == "vendor=x"
    [request] = hook.requests
    assert request.headers["traceparent"] == TP and request.headers["tracestate"] == "vendor=x"
    assert json.loads(request.body)["traceparent"] == TP


@pytest.mark.django_db(transaction=True)
def test_amqp_messages_carry_the_context_in_their_headers(
    rabbitmq_broker, exchange_name, queue_name, no_spans
):
    consumer = PlainConsumer(exchange_name, "#")
    route = factories.route(
        factories.event_type("order.paid"), exchange_name, destination_kind="amqp", queue=queue_name
    )
    event = emit("order.paid", data={"n": 1}, traceparent=TP)
    deliver(event.deliveries.get(route=route).pk)
    try:
        _, properties, body = consumer.next()
    finally:
        consumer.close()
    assert properties.headers == {"traceparent": TP}
    assert body["traceparent"] == TP
