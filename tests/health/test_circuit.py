"""The circuit breaker of a route, run delivery by delivery against a real webhook receiver."""

from datetime import timedelta

import dramatiq
import pytest
from django.test import override_settings
from django.utils import timezone

from eventhub import health
from eventhub.models import Attempt, Delivery, RouteHealth, RouteHealthChange
from eventhub.worker.deliver import deliver
from tests.conftest import queue_depth
from tests.health.conftest import deliveries_of, run

pytestmark = pytest.mark.django_db(transaction=True)


def state_of(route) -> str:
    found = RouteHealth.objects.filter(route=route).first()
    return found.display_state if found else "closed"


def test_failures_in_a_row_open_the_circuit_and_later_deliveries_are_held_unattempted(
    webhook_receiver, webhook_route
):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=3)
    first, second, third, fourth, fifth = deliveries_of(route, 5)

    assert [run(d.pk) for d in (first, second)] == ["retrying", "retrying"]
    assert state_of(route) == "closed"
    # The third failure opens it: that delivery is held rather than retried.
    assert run(third.pk) == "held"
    assert state_of(route) == "open"
    change = RouteHealthChange.objects.get(route=route)
    assert (change.previous, change.state) == ("closed", "open")
    assert "3 failed attempts in a row" in change.reason and "answered 500" in change.reason

    # Later deliveries reach the gate: held before their claim, no attempt, no request.
    assert run(fourth.pk) == "held" and run(fifth.pk) == "held"
    assert len(receiver.requests) == 3
    assert Delivery.objects.get(pk=fourth.pk).attempts == 0
    assert not Attempt.objects.filter(delivery=fourth).exists()
    # A retry of a delivery that failed before the circuit opened is held too, its attempts kept.
    assert run(first.pk) == "held"
    assert Delivery.objects.get(pk=first.pk).attempts == 1


def test_a_success_ends_the_failures_in_a_row(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=3, breaker_failure_percent=0)
    deliveries = deliveries_of(route, 5)
    run(deliveries[0].pk), run(deliveries[1].pk)
    receiver.status = 200
    assert run(deliveries[2].pk) == "succeeded"
    receiver.status = 500
    assert [run(d.pk) for d in deliveries[3:]] == ["retrying", "retrying"]
    assert state_of(route) == "closed"
    assert RouteHealth.objects.get(route=route).consecutive_failures == 2


def test_more_than_the_failure_share_in_the_window_opens_it(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=200)
    route = webhook_route(
        receiver,
        breaker_failures=0,
        breaker_failure_percent=50,
        breaker_min_attempts=6,
        breaker_window_seconds=60,
    )
    answers = [500, 200, 500, 200, 500, 500, 200]
    outcomes = []
    for status, delivery in zip(answers, deliveries_of(route, len(answers)), strict=True):
        receiver.status = status
        outcomes.append(run(delivery.pk))
    # The window starts at its first failure: 4 of 6 attempts failed (over 50% of at least 6) at the sixth.
    assert outcomes[:5] == ["retrying", "succeeded", "retrying", "succeeded", "retrying"]
    assert outcomes[5] == "held"
    assert state_of(route) == "open"
    assert "4 of 6 attempts failed" in RouteHealthChange.objects.get(route=route).reason


def test_410_gone_opens_the_circuit_at_once_and_says_why(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=410, reply=b"this endpoint was removed")
    route = webhook_route(receiver)
    (delivery,) = deliveries_of(route, 1)
    assert run(delivery.pk) == "held"
    change = RouteHealthChange.objects.get(route=route)
    assert change.state == "open" and "410 Gone" in change.reason
    route.refresh_from_db()
    assert route.enabled  # 410 disables nothing by itself


def test_a_probe_that_succeeds_closes_the_circuit(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=1, probe_interval_seconds=30)
    first, second = deliveries_of(route, 2)
    assert run(first.pk) == "held" and run(second.pk) == "held"
    receiver.status = 200

    # The releaser tries the oldest held delivery as the probe once the interval has passed.
    later = timezone.now() + timedelta(seconds=31)
    assert health.release_once(now=later).sent == 1
    assert state_of(route) == "half_open"
    assert RouteHealth.objects.get(route=route).probe_delivery_id == first.pk
    assert run(first.pk) == "succeeded"
    assert state_of(route) == "closed"
    changes = RouteHealthChange.objects.filter(route=route).order_by("pk")
    reasons = list(changes.values_list("state", "reason"))
    assert [s for s, _ in reasons] == ["open", "half_open", "closed"]
    assert f"Probe delivery {first.pk} succeeded" in reasons[-1][1]


def test_a_failed_probe_reopens_and_never_counts_against_the_delivery(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=1, max_attempts=2, probe_interval_seconds=30)
    (delivery,) = deliveries_of(route, 1)
    assert run(delivery.pk) == "held"
    now = timezone.now()
    for round_ in range(1, 5):  # four failed probes of a delivery allowed two attempts
        assert health.release_once(now=now + timedelta(seconds=31 * round_)).sent == 1
        assert run(delivery.pk) == "held"
        assert state_of(route) == "open"
    delivery.refresh_from_db()
    assert delivery.attempts == 5 and delivery.status == "held"
    assert len(receiver.requests) == 5
    assert RouteHealthChange.objects.filter(route=route, reason__startswith="Probe delivery").count() == 4


def test_a_new_delivery_at_the_gate_becomes_the_probe_when_one_is_due(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=1, probe_interval_seconds=30)
    first, second = deliveries_of(route, 2)
    assert run(first.pk) == "held"
    RouteHealth.objects.filter(route=route).update(next_probe_at=timezone.now() - timedelta(seconds=1))
    health.states.invalidate()
    receiver.status = 200
    assert run(second.pk) == "succeeded"
    assert state_of(route) == "closed"


def test_retry_after_on_503_delays_the_retry_no_earlier_than_asked(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=503, headers={"Retry-After": "7"})
    route = webhook_route(receiver, breaker_failures=0, breaker_failure_percent=0)
    (delivery,) = deliveries_of(route, 1)
    with pytest.raises(dramatiq.Retry) as raised:
        deliver(delivery.pk)
    assert raised.value.delay >= 7000


@override_settings(EVENTHUB={"RETRY_AFTER_MAX_SECONDS": 60, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]})
def test_retry_after_is_capped(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=429, headers={"Retry-After": str(365 * 86400)})
    route = webhook_route(receiver, breaker_failures=0, breaker_failure_percent=0, max_backoff_ms=100)
    (delivery,) = deliveries_of(route, 1)
    with pytest.raises(dramatiq.Retry) as raised:
        deliver(delivery.pk)
    assert raised.value.delay == 60_000


def test_retry_after_on_an_opening_failure_puts_off_the_probe(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=503, headers={"Retry-After": "120"})
    route = webhook_route(receiver, breaker_failures=1, probe_interval_seconds=1)
    (delivery,) = deliveries_of(route, 1)
    before = timezone.now()
    assert run(delivery.pk) == "held"
    assert RouteHealth.objects.get(route=route).next_probe_at >= before + timedelta(seconds=119)


def test_a_500_without_retry_after_uses_the_routes_backoff(webhook_receiver, webhook_route):
    receiver = webhook_receiver(status=500, headers={"Retry-After": "30"})  # only 429 and 503 are honoured
    route = webhook_route(receiver, breaker_failures=0, breaker_failure_percent=0)
    (delivery,) = deliveries_of(route, 1)
    with pytest.raises(dramatiq.Retry) as raised:
        deliver(delivery.pk)
    assert raised.value.delay is None


def test_a_healthy_route_costs_no_query_at_the_gate_or_after_a_success(
    webhook_receiver, webhook_route, django_assert_num_queries
):
    route = webhook_route(webhook_receiver(status=200))
    (delivery,) = deliveries_of(route, 1)
    health.gate(delivery.pk)  # loads the process's copy once
    with django_assert_num_queries(0):
        assert health.gate(delivery.pk) is False
    delivery = Delivery.objects.select_related("route").get(pk=delivery.pk)
    with django_assert_num_queries(0):
        assert health.after_attempt(delivery=delivery, status="succeeded", failure=None, error="") == (
            "succeeded",
            None,
        )


def test_while_another_route_holds_a_healthy_routes_delivery_passes_the_gate_without_a_query(
    webhook_receiver, webhook_route, django_assert_num_queries
):
    broken = webhook_route(webhook_receiver(status=500), breaker_failures=1)
    (failed,) = deliveries_of(broken, 1)
    assert run(failed.pk) == "held"
    route = webhook_route(webhook_receiver(status=200))
    (delivery,) = deliveries_of(route, 1)
    health.gate(delivery.pk, route_id=route.pk)  # loads the process's copy once
    # The route its message names is enough: no lookup of the delivery's route for every delivery.
    with django_assert_num_queries(0):
        assert health.gate(delivery.pk, route_id=route.pk) is False
    with django_assert_num_queries(1):
        assert health.gate(delivery.pk) is False  # a message that names no route: one lookup


def test_an_open_routes_new_deliveries_are_held_at_emit_and_sent_no_message(
    webhook_receiver, webhook_route, queue_name
):
    receiver = webhook_receiver(status=500)
    route = webhook_route(receiver, breaker_failures=1, probe_interval_seconds=30, release_per_second=100)
    (first,) = deliveries_of(route, 1)
    assert run(first.pk) == "held"
    waiting_before = queue_depth(queue_name)

    # Emitted after the circuit opened: held from the start; nothing for a worker to pick up and put aside.
    later = deliveries_of(route, 3)[1:]
    assert [d.status for d in later] == ["held"] * 3
    assert all(d.attempts == 0 and d.queued_at is None for d in later)
    assert queue_depth(queue_name) == waiting_before
    assert len(receiver.requests) == 1

    # They are released like any held delivery once a probe closes the route, oldest first.
    receiver.status = 200
    assert health.release_once(now=timezone.now() + timedelta(seconds=31)).sent == 1
    assert run(first.pk) == "succeeded"
    now = timezone.now()
    for second in range(32, 36):
        health.release_once(now=now + timedelta(seconds=second))
    assert not Delivery.objects.filter(route=route, status="held").exists()
    assert [run(d.pk) for d in later] == ["succeeded"] * 3
