"""Before the claim: a delivery over its route's limits or thread share waits queued, not attempted."""

import time

import pytest

from eventhub import emit
from eventhub.models import Attempt, Delivery
from eventhub.worker import limits
from tests.support import factories
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rabbitmq]


def test_a_delivery_over_the_in_flight_limit_stays_queued_and_uncounted_until_a_place_frees(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("limit.held"), name, queue=queue_name, max_in_flight=1)
    taken = limits.admit(route)  # another worker's delivery holds the only place
    assert taken.admitted
    run_worker([queue_name], threads=2)
    emit("limit.held", data={"n": 1})
    wait_for(lambda: Delivery.objects.filter(route=route, status="queued").exists(), what="queued")
    time.sleep(1.0)  # several turns: sent back each time, never claimed
    delivery = Delivery.objects.get(route=route)
    assert (delivery.status, delivery.attempts, calls) == ("queued", 0, [])
    assert not Attempt.objects.filter(delivery=delivery).exists()

    limits.give_back(route.pk, taken.lease)
    wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").exists(), what="delivered")
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and len(calls) == 1
    # Its own lease is given back once the attempt's outcome is written, a moment after the
    # status reads succeeded (well before the lease would expire by itself).
    assert limits.lease_seconds(route) > 10
    wait_for(lambda: limits.in_flight([route.pk]) == {route.pk: 0}, timeout=5, what="its lease given back")


def test_a_hanging_route_cannot_take_every_thread(rabbitmq_broker, queue_name, run_worker, handler):
    def hang(envelope):  # a hanging endpoint (in-process workers have no time limit: it ends by itself)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            time.sleep(0.02)

    _, hanging = handler(hang)
    calls, healthy = handler()
    stuck = factories.route(
        factories.event_type("isolation.stuck"), hanging, queue=queue_name, time_limit_ms=4000
    )
    fine = factories.route(factories.event_type("isolation.fine"), healthy, queue=queue_name)
    run_worker([queue_name], threads=4)
    for n in range(8):
        emit("isolation.stuck", data={"n": n})
    wait_for(lambda: Delivery.objects.filter(route=stuck, status="running").count() >= 2, what="hanging")
    started = time.monotonic()
    for n in range(10):
        emit("isolation.fine", data={"n": n})
    done = Delivery.objects.filter(route=fine, status="succeeded")
    wait_for(lambda: done.count() == 10, timeout=4, what="the healthy route's deliveries done")
    # Well before the hanging attempts end (6 s), and it holds no more than its share (half of 4).
    assert time.monotonic() - started < 4.0 and len(calls) == 10
    assert Delivery.objects.filter(route=stuck, status="running").count() == 2
    assert Delivery.objects.filter(route=stuck, status="queued", attempts=0).count() == 6
