"""eventhub.dashboard.selectors: the dashboard's reads, their filters and the per-route figures."""

from datetime import timedelta

import pytest

from eventhub.dashboard import selectors
from eventhub.discovery import ConsumerInfo, LiveConsumers
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


def test_bad_filter_values_are_dropped_with_a_message_each():
    filters = selectors.parse_filters(
        {"status": "exploded", "range": "3y", "route": "x1", "type": " order.paid "}
    )
    assert (filters.status, filters.range, filters.route, filters.event_type) == ("", "", None, "order.paid")
    assert filters.errors == ["Unknown status 'exploded'.", "Unknown time range '3y'.", "Unknown route 'x1'."]


def test_filters_by_type_status_and_time_combine(two_routes):
    billing, mailer = two_routes
    old_dead = make_delivery(billing, status="dead", error="x", ago=timedelta(hours=3))
    new_dead = make_delivery(billing, status="dead", error="x", ago=timedelta(minutes=1))
    make_delivery(billing, ago=timedelta(minutes=1))
    make_delivery(mailer, status="dead", error="x", ago=timedelta(minutes=1))
    filters = selectors.parse_filters({"type": "order.paid", "status": "dead"})
    assert list(selectors.filtered_deliveries(filters)) == [new_dead, old_dead]
    filters = selectors.parse_filters({"type": "order.paid", "status": "dead", "range": "1h"})
    assert list(selectors.filtered_deliveries(filters)) == [new_dead]


def test_search_finds_an_event_by_our_id_its_producers_id_or_its_subject(two_routes):
    billing, _ = two_routes
    wanted = make_delivery(billing, subject="order/42", external_id="inv-42")
    make_delivery(billing, subject="order/43")
    for text in (str(wanted.event_id), "inv-42", "order/42"):
        assert list(selectors.filtered_deliveries(selectors.parse_filters({"q": text}))) == [wanted]


def test_the_problem_list_ignores_the_status_filter_and_shows_only_dead_and_retrying(two_routes):
    billing, _ = two_routes
    retrying = make_delivery(billing, status="retrying", error="x", ago=timedelta(minutes=2))
    dead = make_delivery(billing, status="dead", error="x", ago=timedelta(minutes=1))
    make_delivery(billing)
    filters = selectors.parse_filters({"status": "succeeded"})
    assert selectors.problem_deliveries(filters) == [dead, retrying]


def test_route_figures_per_window(two_routes):
    billing, _ = two_routes
    for latency in (10, 20, 30, 40, 100):
        make_delivery(billing, latency_ms=latency, ago=timedelta(minutes=1))
    make_delivery(billing, status="dead", error="x", ago=timedelta(minutes=1))
    make_delivery(billing, latency_ms=500, ago=timedelta(minutes=30))
    make_delivery(billing, status="queued", ago=timedelta(hours=5))
    make_delivery(billing, ago=timedelta(days=2))  # outside every window
    figures = {f.route.name: f for f in selectors.route_figures()}["billing"].windows
    assert (figures["5m"].deliveries, figures["1h"].deliveries, figures["24h"].deliveries) == (6, 7, 8)
    assert figures["5m"].success_rate == pytest.approx(5 / 6)
    # Read from log buckets 25% wide: within 25% of the exact 30 ms and 88 ms (40 + 0.8 * (100 - 40)).
    assert figures["5m"].p50_ms == pytest.approx(30, rel=0.25)
    assert figures["5m"].p95_ms == pytest.approx(88, rel=0.25)
    assert figures["1h"].success_rate == pytest.approx(6 / 7)
    assert figures["24h"].ran == 7  # the queued one has not run


def test_routes_nobody_healthy_consumes_are_listed_only_when_consul_answered(two_routes):
    billing, mailer = two_routes
    worker = ConsumerInfo(
        id="w1", service="eventhub-consumer", node="n", host="h", pid=1, queues=(billing.queue,),
        handlers=(), status="passing", output="", last_heartbeat=None,
    )  # fmt: skip
    mailer.queue = "mail"
    mailer.save()
    assert selectors.routes_without_consumers(live=LiveConsumers.from_consumers([worker])) == [mailer]
    assert selectors.routes_without_consumers(live=LiveConsumers(enabled=False)) == []
    assert selectors.routes_without_consumers(live=LiveConsumers(enabled=True, error="refused")) == []
