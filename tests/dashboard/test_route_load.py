"""A route's load now on the dashboard and in /metrics: its rate, its deliveries in flight, its limits."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventhub.dashboard import selectors
from tests.dashboard.test_views import staff  # noqa: F401 - the operator fixture
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited():
    route = factories.route(
        factories.event_type("order.paid"), "h", name="billing", rate_limit=2.5, max_in_flight=3
    )
    for _ in range(6):
        make_delivery(route, status="succeeded")  # finished 10 s ago: in the last minute
    for _ in range(2):
        make_delivery(route, status="running")
    make_delivery(route, status="queued")
    return route


def test_rate_over_the_last_minute_and_running_now(limited):
    assert selectors.route_load()[limited.pk] == selectors.RouteLoad(rate=6 / 60, in_flight=2)


def test_the_dashboard_shows_load_and_limits(staff, limited):  # noqa: F811
    page = staff.get("/eventhub/").content.decode()
    row = page[page.index(f'id="route-{limited.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "0.1/s · 2 in flight" in row and "limit 2.5/s · 3 in flight" in row


def test_metrics_export_load_and_limits(client, settings, limited):
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    text = client.get("/metrics").content.decode()
    values = {
        (s.name, s.labels.get("route")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert values[("eventhub_route_in_flight", "billing")] == 2
    assert values[("eventhub_route_rate_per_second", "billing")] == pytest.approx(0.1)
    assert values[("eventhub_route_rate_limit", "billing")] == 2.5
    assert values[("eventhub_route_max_in_flight", "billing")] == 3
