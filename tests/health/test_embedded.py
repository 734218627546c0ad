"""Endpoint health on the embedded broker (``make run``: in-process worker threads, SQLite by default)."""

import pytest
from django.contrib.auth.models import User

from eventhub import emit_many, health
from eventhub.models import Delivery
from tests.support import factories
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_paused_then_resumed_on_the_embedded_broker(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, release_per_second=50)
    user = User.objects.create_superuser("ops")
    health.pause_route(route=route, user=user)

    emit_many([{"type": "order.paid", "data": {"n": n}} for n in range(5)])
    wait_for(lambda: Delivery.objects.filter(route=route, status="held").count() == 5, what="5 held")
    assert calls == []

    health.resume_route(route=route, user=user)
    # The releaser's rounds (the upkeep's thread under `make run`), sending into this process's broker.
    wait_for(
        lambda: (
            health.release_once() is not None
            and Delivery.objects.filter(route=route, status="succeeded").count() == 5
        ),
        what="5 released and delivered",
    )
    assert sorted(c["data"]["n"] for c in calls) == [0, 1, 2, 3, 4]
