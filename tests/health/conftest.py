"""Fixtures of the endpoint health tests: a webhook route to a loopback receiver, deliveries run by hand."""

import contextlib
from collections.abc import Callable

import dramatiq
import pytest

from eventhub import emit_many
from eventhub.models import Delivery, Route
from eventhub.outbox import background
from eventhub.worker.deliver import deliver
from tests.support import factories


@pytest.fixture
def webhook_route(rabbitmq_broker, queue_name) -> Callable[..., Route]:
    """``webhook_route(receiver, **fields)``: a webhook route on this test's queue (no worker consumes it)."""

    def make(receiver, **fields) -> Route:
        event_type = factories.event_type()
        return factories.route(
            event_type, f"{receiver.url}/hook", destination_kind="webhook", queue=queue_name, **fields
        )

    return make


def deliveries_of(route: Route, count: int) -> list[Delivery]:
    """Emit ``count`` events for ``route`` and return their deliveries, oldest first (messages sent)."""
    emit_many([{"type": route.event_type.name, "data": {"n": n}} for n in range(count)])
    background.flush()
    return list(Delivery.objects.filter(route=route).order_by("pk"))


def run(delivery_id: int) -> str:
    """Run one delivery as a worker would; its status afterwards ("retrying" when retried)."""
    with contextlib.suppress(dramatiq.Retry):
        deliver(delivery_id)
    return Delivery.objects.get(pk=delivery_id).status
