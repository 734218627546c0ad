"""A route's rate and concurrency limits on its gate row (one statement on PostgreSQL; SQLite in Python)."""

import time

import pytest

from eventhub.models import RouteGate
from eventhub.worker import limits
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)


def limited_route(**fields):
    return factories.route(factories.event_type(), "test.nothing", **fields)


def test_a_route_without_limits_is_not_limited():
    assert not limits.limited(limited_route())
    assert limits.limited(limited_route(max_in_flight=3))
    assert limits.limited(limited_route(rate_limit=0.5))


def test_at_most_k_in_flight_until_one_is_given_back():
    route = limited_route(max_in_flight=2)
    first, second, third = (limits.admit(route) for _ in range(3))
    assert first.admitted and second.admitted and first.lease != second.lease
    assert not third.admitted and third.in_flight == 2 and not third.reserved
    assert limits.in_flight([route.pk]) == {route.pk: 2}
    limits.give_back(route.pk, first.lease)
    assert limits.admit(route).admitted
    assert not limits.admit(route).admitted


def test_a_lease_never_given_back_expires_after_the_time_limit_and_grace(settings):
    settings.EVENTHUB = {"LIMIT_LEASE_GRACE_SECONDS": 0.0}
    route = limited_route(max_in_flight=1, time_limit_ms=300)
    assert limits.admit(route).admitted  # its worker was killed: never given back
    assert not limits.admit(route).admitted
    time.sleep(0.4)
    assert limits.admit(route).admitted
    assert limits.in_flight([route.pk]) == {route.pk: 1}  # the expired lease is gone


def test_a_rate_allows_one_seconds_burst_then_reserves_later_starts():
    route = limited_route(rate_limit=2)
    assert limits.admit(route).admitted
    assert limits.admit(route).admitted
    third, fourth = limits.admit(route), limits.admit(route)
    # Each refused start reserved the next free one, half a second apart.
    assert not third.admitted and third.reserved and 0.4 < third.wait <= 0.5
    assert not fourth.admitted and fourth.reserved and 0.9 < fourth.wait <= 1.0
    # Coming back at its turn, a reserved start is not charged again.
    assert limits.admit(route, reserved=True).admitted


def test_a_delivery_refused_for_concurrency_keeps_the_rate_s_token():
    route = limited_route(rate_limit=1, max_in_flight=1)
    first = limits.admit(route)
    assert first.admitted
    limits.give_back(route.pk, first.lease)
    held = limits.admit(route, reserved=True)  # a reserved start takes the only place
    assert held.admitted
    refused = limits.admit(route)
    assert not refused.admitted
    assert refused.reserved  # the rate said no first: one start a second
    limits.give_back(route.pk, held.lease)


def test_in_flight_counts_only_routes_with_a_gate():
    route, other = limited_route(max_in_flight=5), limited_route()
    limits.admit(route)
    assert limits.in_flight([route.pk, other.pk]) == {route.pk: 1}
    assert RouteGate.objects.filter(route=other).count() == 0
