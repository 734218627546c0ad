"""A route's rate and concurrency limits hold across two worker processes (RabbitMQ, the test database)."""

import pytest

from eventhub import emit_many
from eventhub.models import Delivery
from tests.support import factories
from tests.support.waiting import wait_for
from tests.testapp.models import OrderedRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rabbitmq]


def run_all(queue: str, count: int, sleep: float, **limits) -> list[OrderedRun]:
    """Emit ``count`` events to a limited route of the recording handler; its runs once all succeeded."""
    route = factories.route(factories.event_type("limits.run"), "testapp.ordered", queue=queue, **limits)
    emit_many([{"type": "limits.run", "data": {"key": "k", "n": n, "sleep": sleep}} for n in range(count)])
    done = Delivery.objects.filter(route=route, status="succeeded")
    wait_for(lambda: done.count() == count, timeout=120, what="every delivery succeeded")
    # Sent back while over the limit, never attempted for it: one attempt each.
    assert set(Delivery.objects.filter(route=route).values_list("attempts", flat=True)) == {1}
    return list(OrderedRun.objects.order_by("started"))


def test_at_most_k_in_flight_over_both_processes(queue_name, workers):
    runs = run_all(queue_name, 16, 0.3, max_in_flight=2)
    edges = sorted([(r.started, 1) for r in runs] + [(r.finished, -1) for r in runs])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 2  # never more, and the two places were used
    assert len({r.pid for r in runs}) == 2  # both processes ran some


def test_the_rate_holds_over_both_processes(queue_name, workers):
    rate = 5.0
    runs = run_all(queue_name, 20, 0.0, rate_limit=rate)
    starts = [r.started for r in runs]
    burst = rate  # one second's worth may start at once
    # Any n consecutive starts span at least (n - burst) / rate seconds (a little slack for clocks).
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert starts[j] - starts[i] >= (j - i + 1 - burst) / rate - 0.3, (i, j)
    assert starts[-1] - starts[0] >= (len(starts) - burst) / rate - 0.3
    assert len({r.pid for r in runs}) == 2
