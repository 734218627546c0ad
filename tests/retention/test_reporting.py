"""What the pruner reports (log, /metrics, dashboard), and the dashboard's long window after a prune."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from eventhub import retention
from eventhub.dashboard import selectors, stats
from eventhub.models import Delivery, DeliveryMinute
from tests.dashboard.test_views import VIEWER, login, route_row
from tests.support.factories import event_type, make_delivery, route

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def a_route():
    return route(event_type("order.paid"), "tests.record", name="billing")


def test_a_run_is_logged_at_info_with_its_counts_and_the_settings(a_route, caplog):
    make_delivery(a_route, status="succeeded", ago=20 * DAY)
    with caplog.at_level(logging.INFO, logger="eventhub.retention.prune"):
        retention.prune()
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Pruned")]
    assert "Pruned 3 rows" in line and "deliveries succeeded 1" in line and "events 1" in line
    assert "retention: succeeded 14d, dead 90d" in line


def test_metrics_count_the_rows_every_run_deleted(client, settings, a_route):
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    for ago in (20, 30):
        make_delivery(a_route, status="succeeded", ago=ago * DAY, attempts=2, error="e")
        retention.prune()

    text = client.get("/metrics").content.decode()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    pruned = {s.labels["kind"]: s.value for s in families["eventhub_pruned_rows"].samples}
    assert pruned["deliveries_succeeded"] == 2 and pruned["attempts"] == 4 and pruned["events"] == 2
    assert pruned["deliveries_dead"] == 0
    [last] = families["eventhub_last_prune_timestamp_seconds"].samples
    assert abs(last.value - timezone.now().timestamp()) < 60


def test_the_dashboard_shows_the_settings_and_the_last_prune(client, a_route):
    staff = login(client, "op", VIEWER)
    assert "No prune has run yet." in staff.get("/eventhub/").content.decode()
    event_type("order.refunded", retention_succeeded_days=3)
    make_delivery(a_route, status="dead", ago=100 * DAY)
    retention.prune()

    html = staff.get("/eventhub/").content.decode()

    panel = html[html.index('<section class="card" id="retention">') :]
    panel = panel[: panel.index("</section>")]
    assert "succeeded <strong>14</strong>" in panel and "rollup <strong>400</strong>" in panel
    assert "order.refunded (succeeded 3, dead —)" in panel
    assert "Last prune:" in panel and "deliveries dead <strong>1</strong>" in panel
    assert "events <strong>1</strong>" in panel


def test_the_30_day_figures_still_count_deliveries_after_the_pruner_deleted_them(client, a_route):
    now = timezone.now()
    for ago in (3, 20):
        for _ in range(2):
            make_delivery(a_route, status="succeeded", ago=ago * DAY)
    make_delivery(a_route, status="dead", ago=20 * DAY)
    _rollups_as_the_dashboard_wrote_them_back_then(now)

    report = retention.prune()

    assert report.counts["deliveries_succeeded"] == 2 and Delivery.objects.count() == 3
    stats.refresh(now=now, force=True)  # a refresh after the prune leaves the old figures alone
    [figures] = selectors.route_figures(now=now)
    month = figures.windows["30d"]
    assert (month.deliveries, month.succeeded, month.ran) == (5, 4, 5)
    assert figures.windows["24h"].deliveries == 0
    row = route_row(login(client, "op", VIEWER).get("/eventhub/").content.decode(), a_route)
    assert '<td class="num">5</td>' in row and '<td class="num">80%</td>' in row


def _rollups_as_the_dashboard_wrote_them_back_then(now) -> None:
    minutes = sorted({d.created_at.replace(second=0, microsecond=0) for d in Delivery.objects.all()})
    DeliveryMinute.objects.bulk_create(stats.compute(minutes, now=now))
    DeliveryMinute.objects.bulk_create(stats.compute_hours({m.replace(minute=0) for m in minutes}, now=now))
    DeliveryMinute.objects.filter(span=1).delete()  # minute rows live two days; hour rows stay
