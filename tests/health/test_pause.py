"""Pause and resume: permission-checked, recorded with who and why, deliveries held and then released."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from eventhub import health
from eventhub.models import Delivery, RouteHealth, RouteHealthChange
from tests.health.conftest import deliveries_of, run

pytestmark = pytest.mark.django_db(transaction=True)


def operator(*, may_pause: bool = True) -> User:
    user = User.objects.create_user(f"op{User.objects.count()}", is_staff=True)
    if may_pause:
        user.user_permissions.add(Permission.objects.get(codename="pause_route"))
    return User.objects.get(pk=user.pk)


def test_without_the_permission_pausing_is_refused_and_nothing_changes(webhook_receiver, webhook_route):
    route = webhook_route(webhook_receiver())
    with pytest.raises(PermissionDenied):
        health.pause_route(route=route, user=operator(may_pause=False))
    with pytest.raises(PermissionDenied):
        health.resume_route(route=route, user=operator(may_pause=False))
    assert not RouteHealth.objects.filter(route=route, paused=True).exists()
    assert not RouteHealthChange.objects.exists()


def test_a_paused_route_holds_its_deliveries_and_resume_releases_them_at_its_pace(
    webhook_receiver, webhook_route
):
    receiver = webhook_receiver(status=200)
    route = webhook_route(receiver, release_per_second=2)
    user = operator()
    change = health.pause_route(route=route, user=user, reason="receiver maintenance")
    assert (change.previous, change.state, change.username) == ("closed", "paused", user.username)
    assert "receiver maintenance" in change.reason
    assert health.pause_route(route=route, user=user) is None  # already paused: nothing recorded

    deliveries = deliveries_of(route, 5)  # still made while paused, held from the start (no message)...
    assert [d.status for d in deliveries] == ["held"] * 5
    assert [run(d.pk) for d in deliveries] == ["held"] * 5  # ... and held, never attempted
    assert receiver.requests == [] and all(d.attempts == 0 for d in Delivery.objects.filter(route=route))
    assert health.release_once().sent == 0  # paused: nothing released

    resumed = health.resume_route(route=route, user=user)
    assert (resumed.previous, resumed.state) == ("paused", "closed")
    # Released oldest first, at two a second: one now, none 0.2 s later, one at 0.5 s and one at 1 s.
    now = timezone.now()
    sent = [health.release_once(now=now + timedelta(seconds=s)).sent for s in (0, 0.2, 0.5, 1.0)]
    assert sent == [1, 0, 1, 1]
    # A round that comes late sends no more than a fifth of a second's worth extra (no burst).
    assert health.release_once(now=now + timedelta(seconds=3.0)).sent == 1
    released = list(Delivery.objects.filter(route=route).exclude(status="held").order_by("pk"))
    assert [d.pk for d in released] == [d.pk for d in deliveries[:4]]
    assert [run(d.pk) for d in released] == ["succeeded"] * 4
    assert len(receiver.requests) == 4


def test_a_retrying_delivery_of_a_paused_route_is_held_when_its_retry_comes(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=0, breaker_failure_percent=0)
    (delivery,) = deliveries_of(route, 1)
    assert run(delivery.pk) == "retrying"
    health.pause_route(route=route, user=operator())
    assert run(delivery.pk) == "held"
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1
