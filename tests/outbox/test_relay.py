"""The outbox relay: deliveries the broker never confirmed are sent again, by one relay only."""

import threading
import time

import pytest
from django.db import connection

from eventhub.models import Delivery
from eventhub.outbox import relay
from eventhub.outbox.send import mark_queued
from tests.support import factories
from tests.support.process import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_relay_sends_only_deliveries_pending_past_the_grace_period(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    old, young = (
        factories.pending_deliveries(route, 3, age_seconds=60),
        factories.pending_deliveries(route, 2, age_seconds=1),
    )
    already = factories.pending_deliveries(route, 1, status="queued")
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
    rows = factories.pending_deliveries(route, 40)
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


def test_relay_command_once_reports_what_it_sent(rabbitmq_broker, queue_name):
    route = factories.route(factories.event_type("order.paid"), "testapp.record", queue=queue_name)
    factories.pending_deliveries(route, 4)
    result = run_manage("eventhub_relay", "--once", "--after", "10")
    assert result.returncode == 0, result.stderr
    assert "relayed 4 pending deliveries; re-sent 0 stuck running" in result.stdout
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
