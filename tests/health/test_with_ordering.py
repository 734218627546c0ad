"""Held deliveries and ordering keys together, with real workers on RabbitMQ and the releaser running.

A key's line holds while its head is held (held is not finished), a held delivery runs
again only through the releaser, and the line still runs in emit order once the
route closes: held, waiting and the release of a key's next delivery fit together.
"""

import threading

import pytest

from eventhub import emit_many, health
from eventhub.models import Delivery, RouteHealthChange
from tests.support import factories
from tests.support.waiting import wait_for
from tests.testapp.models import OrderedRun, Switch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rabbitmq]


@pytest.fixture
def releaser():
    stop = threading.Event()
    thread = health.start_releaser(stop)
    yield thread
    stop.set()
    thread.join(10)


def test_an_open_route_holds_a_keys_line_and_releases_it_in_emit_order(
    rabbitmq_broker, queue_name, run_worker, releaser
):
    Switch.objects.create(name="broken", on=True)
    route = factories.route(
        factories.event_type("order.changed"),
        "testapp.ordered",
        ordering_key="{data.key}",
        queue=queue_name,
        breaker_failures=2,
        probe_interval_seconds=1,
        release_per_second=20,
        min_backoff_ms=50,
        max_backoff_ms=100,
        max_attempts=3,
    )
    run_worker([queue_name], threads=4)
    emit_many(
        [{"type": "order.changed", "data": {"key": "a", "n": 0, "fail": True}}]
        + [{"type": "order.changed", "data": {"key": "a", "n": n}} for n in (1, 2)]
    )
    # The head of "a" fails twice in a row: the route opens and the head is held, not dead (3 allowed).
    head = Delivery.objects.get(route=route, ordering_key="a", event__data__n=0)
    wait_for(lambda: RouteHealthChange.objects.filter(route=route, state="open").exists(), what="open")
    wait_for(lambda: Delivery.objects.get(pk=head.pk).status == "held", what="head held")
    # Made while the route is open: held at the gate, never attempted.
    later = emit_many([{"type": "order.changed", "data": {"key": "b", "n": n}} for n in (1, 2)])
    wait_for(
        lambda: Delivery.objects.filter(event__in=later, status="held", attempts=0).count() == 2,
        what="new deliveries held",
    )

    Switch.objects.filter(name="broken").update(on=False)
    # The releaser's probe (the oldest held delivery: the head) succeeds, the route closes, the rest follow.
    wait_for(
        lambda: Delivery.objects.filter(route=route, status="succeeded").count() == 5,
        timeout=30,
        what="every delivery succeeded",
    )
    runs = {key: [r.n for r in OrderedRun.objects.filter(key=key).order_by("started")] for key in "ab"}
    assert runs == {"a": [0, 1, 2], "b": [1, 2]}
    assert not Delivery.objects.filter(route=route, status="dead").exists()
    assert RouteHealthChange.objects.filter(route=route).latest("pk").state == "closed"
    head.refresh_from_db()
    assert head.attempts - head.attempts_before_replay <= 3
