"""Ordering per key: numbered at emit, one at a time in emit order, a failure holds back only its key.

These call the worker's ``deliver`` by hand on RabbitMQ with no worker running (the
messages wait in the test's queue); tests/system/test_ordering.py runs several
worker processes.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from eventhub import emit, emit_many
from eventhub.models import Delivery, OrderingKey
from eventhub.outbox import ordering, replay_deliveries
from eventhub.worker.deliver import DeliveryFailed, deliver
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ordered_route(rabbitmq_broker, queue_name):
    def make(handler_name: str, **fields):
        return factories.route(
            factories.event_type("order.changed"),
            handler_name,
            ordering_key="{data.order}",
            queue=queue_name,
            **fields,
        )

    return make


def deliveries(route) -> list[Delivery]:
    return list(Delivery.objects.filter(route=route).order_by("pk"))


def status(delivery: Delivery) -> str:
    return Delivery.objects.values_list("status", flat=True).get(pk=delivery.pk)


def test_emit_gives_each_key_its_own_numbers_in_emit_order(ordered_route, handler):
    _, name = handler()
    route = ordered_route(name)
    emit_many([{"type": "order.changed", "data": {"order": key, "n": n}} for n in range(3) for key in "ab"])
    emit("order.changed", data={"order": "a", "n": 3})
    emit("order.changed", data={"no_order": True})  # no key: delivered without ordering
    rows = [(d.ordering_key, d.ordering_seq, d.event.data.get("n")) for d in deliveries(route)]
    assert rows == [
        ("a", 1, 0),
        ("b", 1, 0),
        ("a", 2, 1),
        ("b", 2, 1),
        ("a", 3, 2),
        ("b", 3, 2),
        ("a", 4, 3),
        (None, None, None),
    ]
    assert OrderingKey.objects.filter(route=route).count() == 2


def test_a_later_delivery_waits_and_runs_when_the_earlier_finishes(ordered_route, handler):
    calls, name = handler()
    route = ordered_route(name)
    first, second, third = (emit("order.changed", data={"order": 7, "n": n}) for n in range(3))
    d1, d2, d3 = deliveries(route)

    assert deliver(d2.pk) is None and deliver(d3.pk) is None
    assert status(d2) == status(d3) == "waiting"
    assert Delivery.objects.get(pk=d2.pk).attempts == 0  # waiting is not an attempt
    assert calls == []

    assert deliver(d1.pk).status == "succeeded"
    assert status(d2) == "queued" and status(d3) == "waiting"  # only the key's next one is sent

    deliver(d2.pk)
    assert status(d3) == "queued"
    deliver(d3.pk)
    assert [c["data"]["n"] for c in calls] == [0, 1, 2]
    assert [c["id"] for c in calls] == [str(e.id) for e in (first, second, third)]


def test_other_keys_run_while_one_key_waits(ordered_route, handler):
    calls, name = handler()
    route = ordered_route(name)
    emit_many([{"type": "order.changed", "data": {"order": k, "n": n}} for n in range(2) for k in ("x", "y")])
    x1, y1, x2, y2 = deliveries(route)
    assert deliver(x2.pk) is None  # x1 has not run: x2 waits
    assert deliver(y1.pk).status == "succeeded"
    assert deliver(y2.pk).status == "succeeded"
    assert status(x2) == "waiting" and [
        c["data"]["k"] if "k" in c["data"] else c["data"]["order"] for c in calls
    ] == [
        "y",
        "y",
    ]


def test_a_failing_delivery_holds_back_its_key_until_it_is_dead(ordered_route, handler):
    def fail_first(envelope):
        if envelope["data"]["n"] == 0:
            raise RuntimeError("downstream refused")

    calls, name = handler(fail_first)
    route = ordered_route(name, max_attempts=2)
    emit_many([{"type": "order.changed", "data": {"order": 1, "n": n}} for n in range(2)])
    d1, d2 = deliveries(route)
    with pytest.raises(DeliveryFailed):
        deliver(d1.pk)
    assert status(d1) == "retrying"
    assert deliver(d2.pk) is None and status(d2) == "waiting"  # held back while its key's head retries
    assert deliver(d1.pk).status == "dead"
    assert status(d2) == "queued"  # dead: the next one may run
    assert deliver(d2.pk).status == "succeeded"


def test_a_replayed_delivery_goes_to_the_back_of_its_key(ordered_route, handler, admin_user):
    def fail_first(envelope):
        if envelope["data"]["n"] == 0 and not calls_after_fix:
            raise RuntimeError("broken")

    calls_after_fix: list = []
    calls, name = handler(fail_first)
    route = ordered_route(name, max_attempts=1)
    emit_many([{"type": "order.changed", "data": {"order": 1, "n": n}} for n in range(3)])
    d1, d2, d3 = deliveries(route)
    assert deliver(d1.pk).status == "dead"
    calls_after_fix.append(True)
    assert replay_deliveries(deliveries=[d1], user=admin_user) == 1
    assert Delivery.objects.get(pk=d1.pk).ordering_seq == 4
    assert deliver(d1.pk) is None and status(d1) == "waiting"  # d2 and d3 came first
    deliver(d2.pk)
    deliver(d3.pk)
    assert status(d1) == "queued"
    deliver(d1.pk)
    assert [c["data"]["n"] for c in calls] == [0, 1, 2, 0]  # the first call failed, the last replayed it


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_numbers_follow_the_order_in_which_emitters_commit(ordered_route, handler):
    _, name = handler()
    route = ordered_route(name)
    holding = threading.Event()

    def slow_emitter():
        with transaction.atomic():
            emit("order.changed", data={"order": 5, "who": "slow"})
            holding.set()
            time.sleep(0.5)  # holds the key's row until it commits
        connection.close()

    thread = threading.Thread(target=slow_emitter)
    thread.start()
    holding.wait(5)
    emit("order.changed", data={"order": 5, "who": "fast"})  # waits for the slow emitter's commit
    thread.join()
    seqs = {d.event.data["who"]: d.ordering_seq for d in deliveries(route)}
    assert seqs == {"slow": 1, "fast": 2}


def test_idle_keys_are_forgotten_but_not_those_with_unfinished_work(ordered_route, handler):
    _, name = handler()
    route = ordered_route(name)
    emit_many([{"type": "order.changed", "data": {"order": k}} for k in ("done", "open")])
    done, _open = deliveries(route)
    deliver(done.pk)
    OrderingKey.objects.update(updated_at="2000-01-01T00:00:00Z")
    assert ordering.prune_idle_keys(idle_seconds=60, force=True) == 1
    assert list(OrderingKey.objects.values_list("key", flat=True)) == ["open"]
