"""The outbox relay, interrupted attempts, and malformed delivery messages."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from eventhub import relay
from eventhub.actors import MalformedMessage, _deliver, malformed_reason
from eventhub.delivery import INTERRUPTED, deliver
from eventhub.dispatch import mark_queued
from eventhub.models import Delivery, Event
from tests import factories
from tests.process import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


def pending(route, n: int, *, age_seconds: float = 60, status: str = "pending") -> list[Delivery]:
    """``n`` deliveries written ``age_seconds`` ago and never sent (as after a crash)."""
    created = timezone.now() - timedelta(seconds=age_seconds)
    rows = []
    for _ in range(n):
        event = Event.objects.create(
            event_type=route.event_type, type=route.event_type.name, source="/t", time=created
        )
        rows.append(Delivery(event=event, route=route, created_at=created, status=status))
    return Delivery.objects.bulk_create(rows)


def test_relay_sends_only_deliveries_pending_past_the_grace_period(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    old, young = pending(route, 3, age_seconds=60), pending(route, 2, age_seconds=1)
    already = pending(route, 1, status="queued")
    run_worker([queue_name])

    assert relay.relay_once(after_seconds=30) == 3

    deadline = time.monotonic() + 10
    while Delivery.objects.filter(status="succeeded").count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert [statuses[d.pk] for d in old] == ["succeeded"] * 3
    assert [statuses[d.pk] for d in young] == ["pending"] * 2
    assert statuses[already[0].pk] == "queued"
    assert len(calls) == 3


def test_two_relays_at_once_never_send_the_same_delivery(monkeypatch, stub_broker):
    route = factories.route(factories.event_type("order.paid"), "anything")
    rows = pending(route, 40)
    sent: list[list[int]] = []

    def slow_send(items):
        sent.append([item.delivery_id for item in items])
        time.sleep(0.3)  # hold the claimed batch while the other relay looks
        mark_queued(sent[-1])  # as a confirmed send does
        return len(items)

    monkeypatch.setattr(relay, "send_deliveries", slow_send)

    def run():
        try:
            relay.relay_once(after_seconds=0, batch_size=25)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    first, second = sent
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(d.pk for d in rows)
    print(f"\n[relay] {connection.vendor}: batches of {len(first)} and {len(second)}, no overlap")


def test_a_delivery_stuck_running_long_past_its_time_limit_is_sent_again(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, time_limit_ms=1000)
    stale, fresh = pending(route, 1, status="running"), pending(route, 1, status="running")
    Delivery.objects.filter(pk=stale[0].pk).update(
        started_at=timezone.now() - timedelta(seconds=700), attempts=1
    )
    Delivery.objects.filter(pk=fresh[0].pk).update(
        started_at=timezone.now() - timedelta(seconds=60), attempts=1
    )

    assert relay.rescue_stale(stale_seconds=600) == 1

    from eventhub import broker as brokers

    brokers.drain_embedded()
    stale[0].refresh_from_db()
    assert (stale[0].status, stale[0].attempts) == ("succeeded", 2)
    assert list(stale[0].attempt_log.values_list("number", "error")) == [(1, INTERRUPTED), (2, "")]
    assert Delivery.objects.get(pk=fresh[0].pk).status == "running"


def test_an_interrupted_last_attempt_makes_the_delivery_dead_instead_of_running_again(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, max_attempts=2)
    (delivery,) = pending(route, 1, status="running")
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2, started_at=timezone.now())

    assert deliver(delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error, calls) == ("dead", INTERRUPTED, [])


def test_relay_command_once_reports_what_it_sent(rabbitmq_broker, queue_name):
    route = factories.route(factories.event_type("order.paid"), "testapp.record", queue=queue_name)
    pending(route, 4)
    result = run_manage("eventhub_relay", "--once", "--after", "10")
    assert result.returncode == 0, result.stderr
    assert "relayed 4 pending deliveries; re-sent 0 stuck running" in result.stdout
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


@pytest.mark.parametrize(
    "args, kwargs, reason",
    [
        ((7,), {}, ""),
        (("7",), {}, "expected a delivery id, got '7'"),
        ((True,), {}, "expected a delivery id, got True"),
        ((), {}, "expected one delivery id"),
        ((1, 2), {}, "expected one delivery id"),
        ((1,), {"x": 1}, "expected one delivery id"),
    ],
)
def test_malformed_delivery_arguments_are_refused(args, kwargs, reason):
    assert (
        malformed_reason(args, kwargs).startswith(reason) if reason else malformed_reason(args, kwargs) == ""
    )
    if reason:
        with pytest.raises(MalformedMessage):
            _deliver(*args, **kwargs)
