"""Ordering per key with several worker processes on RabbitMQ and the test database.

Every key's events run one at a time in emit order while different keys run in
parallel across processes; a failing delivery holds back only its own key. The
10,000-event version, with throughput against an unordered route, is the bench's
``ordered`` phase (docs/benchmark.md).
"""

from collections import defaultdict

import pytest

from eventhub import emit_many
from eventhub.models import Delivery
from tests.support import factories
from tests.support.waiting import wait_for
from tests.testapp.models import OrderedRun, Switch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rabbitmq]


def ordered_route(queue: str, **fields):
    return factories.route(
        factories.event_type("order.changed"),
        "testapp.ordered",
        ordering_key="{data.key}",
        queue=queue,
        **fields,
    )


def runs_by_key() -> dict[str, list[OrderedRun]]:
    runs: dict[str, list[OrderedRun]] = defaultdict(list)
    for run in OrderedRun.objects.order_by("started"):
        runs[run.key].append(run)
    return runs


def test_each_keys_events_run_one_at_a_time_in_emit_order(queue_name, workers):
    route = ordered_route(queue_name)
    keys, per_key = 20, 25
    events = [
        {"type": "order.changed", "data": {"key": f"k{i % keys}", "n": i // keys}}
        for i in range(keys * per_key)
    ]
    for start in range(0, len(events), 100):
        emit_many(events[start : start + 100])
    wait_for(
        lambda: Delivery.objects.filter(route=route, status="succeeded").count() == keys * per_key,
        timeout=180,
        what="every delivery succeeded",
    )
    runs = runs_by_key()
    assert len(runs) == keys
    for key, line in runs.items():
        assert [run.n for run in line] == list(range(per_key)), key
        # One at a time: each run starts after the previous one of its key finished.
        assert all(b.started >= a.finished for a, b in zip(line, line[1:], strict=False)), key
    assert len({run.pid for line in runs.values() for run in line}) == 2  # both processes worked


def test_a_failing_delivery_holds_back_only_its_own_key(queue_name, workers):
    Switch.objects.create(name="broken", on=True)
    # About ordering alone: no circuit breaker, which would hold the failing key's head after a few
    # failures in a row (tests/health/test_with_ordering.py covers the two together).
    route = ordered_route(
        queue_name,
        max_attempts=50,
        min_backoff_ms=100,
        max_backoff_ms=300,
        breaker_failures=0,
        breaker_failure_percent=0,
    )
    emit_many(
        [{"type": "order.changed", "data": {"key": "bad", "n": 0, "fail": True}}]
        + [{"type": "order.changed", "data": {"key": key, "n": n}} for n in (1, 2) for key in ("bad", "good")]
        + [{"type": "order.changed", "data": {"key": "good", "n": 0}}]
    )
    by_key = lambda key: Delivery.objects.filter(route=route, ordering_key=key)  # noqa: E731
    wait_for(lambda: by_key("good").filter(status="succeeded").count() == 3, timeout=60, what="good key done")
    wait_for(lambda: by_key("bad").filter(status="waiting").count() == 2, timeout=30, what="bad key waiting")
    assert by_key("bad").exclude(status="waiting").get().status in ("retrying", "running", "queued")
    assert [r.n for r in runs_by_key()["good"]] == [1, 2, 0]  # emit order within the key

    Switch.objects.filter(name="broken").update(on=False)
    wait_for(lambda: by_key("bad").filter(status="succeeded").count() == 3, timeout=60, what="bad key done")
    assert [r.n for r in runs_by_key()["bad"]] == [0, 1, 2]
    assert Delivery.objects.get(route=route, event__data__n=0, ordering_key="bad").attempts > 1
