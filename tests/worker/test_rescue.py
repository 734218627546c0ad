"""Rescue of deliveries whose worker died: sent again, or dead when that was the last attempt."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eventhub.models import Delivery
from eventhub.worker import rescue
from eventhub.worker.deliver import INTERRUPTED, deliver
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_delivery_stuck_running_long_past_its_time_limit_is_sent_again(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, time_limit_ms=1000)
    stale, fresh = (
        factories.pending_deliveries(route, 1, status="running"),
        factories.pending_deliveries(route, 1, status="running"),
    )
    Delivery.objects.filter(pk=stale[0].pk).update(
        started_at=timezone.now() - timedelta(seconds=700), attempts=1
    )
    Delivery.objects.filter(pk=fresh[0].pk).update(
        started_at=timezone.now() - timedelta(seconds=60), attempts=1
    )

    assert rescue.rescue_stale(stale_seconds=600) == 1

    from eventhub import broker as brokers

    brokers.drain_embedded()
    stale[0].refresh_from_db()
    assert (stale[0].status, stale[0].attempts) == ("succeeded", 2)
    assert list(stale[0].attempt_log.values_list("number", "error")) == [(1, INTERRUPTED), (2, "")]
    assert Delivery.objects.get(pk=fresh[0].pk).status == "running"


def test_an_interrupted_last_attempt_makes_the_delivery_dead_instead_of_running_again(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, max_attempts=2)
    (delivery,) = factories.pending_deliveries(route, 1, status="running")
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2, started_at=timezone.now())

    assert deliver(delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error, calls) == ("dead", INTERRUPTED, [])
