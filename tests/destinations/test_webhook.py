"""The webhook destination against real HTTP servers on loopback."""

import json

import pytest

from eventhub import emit
from eventhub.destinations.signing import SignatureError, verify
from eventhub.models import Delivery
from eventhub.worker.deliver import DeliveryFailed, deliver
from tests.support import factories
from tests.support.waiting import wait_for


@pytest.fixture
def receiver(webhook_receiver):
    return webhook_receiver


def webhook_route(target: str, **fields):
    return factories.route(factories.event_type("order.paid"), target, destination_kind="webhook", **fields)


@pytest.mark.django_db(transaction=True)
def test_a_webhook_route_posts_the_signed_envelope(rabbitmq_broker, queue_name, run_worker, receiver):
    hook = receiver()
    route = webhook_route(f"{hook.url}/hooks/eventhub", queue=queue_name)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 9}, subject="order/9")

    wait_for(lambda: Delivery.objects.filter(event=event, status="succeeded").exists())
    [request] = hook.requests
    assert request.path == "/hooks/eventhub"
    assert json.loads(request.body) == event.envelope
    delivery = event.deliveries.get()
    assert request.headers["webhook-id"] == f"{event.pk}.{delivery.pk}"  # unique per delivery
    verify(secret=route.secret, headers=request.headers, body=request.body)  # raises if it does not verify
    with pytest.raises(SignatureError):
        verify(secret="whsec_" + "A" * 32, headers=request.headers, body=request.body)
    with pytest.raises(SignatureError):
        verify(secret=route.secret, headers=request.headers, body=request.body + b" ")


@pytest.mark.django_db
def test_a_non_2xx_answer_is_a_failure_with_status_and_body(stub_broker, receiver):
    hook = receiver(status=500, reply=b"boom: database unavailable" + b"x" * 2000)
    webhook_route(hook.url, max_attempts=2)
    event = emit("order.paid", data={})
    delivery = event.deliveries.get()

    with pytest.raises(DeliveryFailed):
        deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.last_error.startswith(
        f"HttpStatusError: {hook.url} answered 500: boom: database unavailable"
    )
    assert len(delivery.last_error) < 700  # the start of the body, not all of it

    deliver_outcome = deliver(delivery.pk)
    assert deliver_outcome.status == "dead"


@pytest.mark.django_db
def test_an_unreachable_url_is_a_failure(stub_broker, receiver):
    hook = receiver()
    hook.stop()
    webhook_route(hook.url, max_attempts=1)
    delivery = emit("order.paid", data={}).deliveries.get()
    outcome = deliver(delivery.pk)
    assert outcome.status == "dead" and "unreachable" in outcome.error


@pytest.mark.django_db
def test_a_bad_target_is_dead_at_once(stub_broker):
    webhook_route("ftp://example.invalid/x", max_attempts=5)
    delivery = emit("order.paid", data={}).deliveries.get()
    outcome = deliver(delivery.pk)
    assert outcome.status == "dead" and "http(s):// or consul://" in outcome.error
