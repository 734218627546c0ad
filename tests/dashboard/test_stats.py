"""Per-minute rollups behind the dashboard's figures: recomputed when deliveries are created or finish."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eventhub.dashboard import stats
from eventhub.models import Delivery, DeliveryMinute
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("ms", [0.2, 1, 1.3, 7, 30, 999, 12_345, 3_600_000])
def test_each_latency_falls_in_the_bucket_that_bounds_it(ms):
    lower, upper = stats.bucket_bounds(stats.bucket_of(ms))
    assert lower < ms <= upper or (ms <= 1 and lower == 0)


def test_percentiles_from_buckets_are_within_a_bucket_of_the_exact_value():
    values = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560]
    buckets: dict[str, int] = {}
    for ms in values:
        stats.merge(buckets, {str(stats.bucket_of(ms)): 1})
    assert stats.percentile(buckets, 0.5) == pytest.approx(80, rel=0.25)
    assert stats.percentile(buckets, 0.9) == pytest.approx(1280, rel=0.25)
    assert stats.percentile({}, 0.5) is None


def test_refresh_counts_new_deliveries_and_notices_when_one_finishes():
    route = factories.route(factories.event_type("order.paid"), "h.billing")
    done = make_delivery(route, status="succeeded", latency_ms=40, ago=timedelta(seconds=30))
    waiting = make_delivery(route, status="queued", ago=timedelta(seconds=30))
    assert stats.refresh(force=True) >= 1
    counts = {}
    for row in DeliveryMinute.objects.filter(route=route, span=1):
        stats.merge(counts, row.counts)
    assert counts == {"succeeded": 1, "queued": 1}

    # The queued one finishes later: its minute is recomputed, nothing is counted twice.
    Delivery.objects.filter(pk=waiting.pk).update(status="dead", finished_at=timezone.now(), last_error="x")
    stats.refresh(force=True)
    counts = {}
    for row in DeliveryMinute.objects.filter(route=route, span=1):
        stats.merge(counts, row.counts)
    assert counts == {"succeeded": 1, "dead": 1}
    assert done.pk


def test_refresh_is_skipped_when_another_just_ran():
    route = factories.route(factories.event_type("order.paid"), "h.billing")
    make_delivery(route)
    assert stats.refresh(force=True) == 1
    make_delivery(route)
    assert stats.refresh() == 0  # within REFRESH_EVERY of the last one
    assert stats.refresh(force=True) == 1
    hour = DeliveryMinute.objects.get(route=route, span=60)
    assert hour.counts == {"succeeded": 2} and sum(hour.latency.values()) == 2


def test_minutes_older_than_a_day_are_neither_computed_nor_kept():
    route = factories.route(factories.event_type("order.paid"), "h.billing")
    make_delivery(route, ago=timedelta(days=3))
    stats.refresh(force=True)
    assert not DeliveryMinute.objects.exists()
