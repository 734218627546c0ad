"""Per-minute delivery figures, pre-aggregated so the dashboard never aggregates a day of deliveries.

One :class:`~eventhub.models.DeliveryMinute` row per route and minute holds the
deliveries created in that minute counted by status, and the emit→handled latency
of the succeeded ones as counts in logarithmic buckets (each 25% wider than the
last, so a percentile read from them is within about 12% of the exact one).

:func:`refresh` recomputes only the minutes that changed since the last refresh:
minutes in which deliveries were created, and minutes whose deliveries finished
(an attempt's outcome was recorded) since then. The dashboard calls it before it
reads figures, at most every few seconds; the work is proportional to the traffic
since the last refresh, not to the size of the tables.
"""

import math
import operator
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from eventhub.models import Delivery, DeliveryMinute

BUCKET_RATIO = 1.25
# The longest window recomputed from delivery rows; older minutes are never recomputed. Minute rows
# are deleted here after KEEP; hour rows, which the long windows read, are kept for
# EVENTHUB["RETENTION_ROLLUP_DAYS"] by the pruner (eventhub/retention/), long after the rows they count.
LONGEST = timedelta(days=1)
KEEP = timedelta(days=2)
REFRESH_EVERY = timedelta(seconds=5)
# A delivery becomes visible when its transaction commits, a little after its created_at.
COMMIT_SLACK = timedelta(minutes=1)


def bucket_of(ms: float) -> int:
    """The latency bucket of ``ms`` milliseconds: bucket i holds (1.25**(i-1), 1.25**i] ms."""
    if ms <= 1.0:
        return 0
    return math.ceil(math.log(ms) / math.log(BUCKET_RATIO) - 1e-9)


def bucket_bounds(index: int) -> tuple[float, float]:
    """The (lower, upper] milliseconds of a bucket."""
    return (0.0 if index == 0 else BUCKET_RATIO ** (index - 1), BUCKET_RATIO**index)


def refresh(*, now: datetime | None = None, force: bool = False) -> int:
    """Recompute the minutes that changed since the last refresh; returns how many rows were written.

    Skipped when another refresh wrote within REFRESH_EVERY (unless ``force``).
    """
    now = now or timezone.now()
    last = DeliveryMinute.objects.aggregate(last=Max("refreshed_at"))["last"]
    if last is not None and not force and now - last < REFRESH_EVERY:
        return 0
    since = max(last - COMMIT_SLACK, now - LONGEST) if last else now - LONGEST
    minutes = dirty_minutes(since=since, not_before=now - LONGEST)
    rows = compute(minutes, now=now)
    try:
        with transaction.atomic():
            _upsert(rows)
            hours = compute_hours({m.replace(minute=0) for m in minutes}, now=now)
            _upsert(hours)
            DeliveryMinute.objects.filter(span=1, minute__lt=now - KEEP).delete()
    except IntegrityError:
        return 0  # a concurrent refresh wrote the same minutes; its figures are as fresh
    return len(rows)


def _upsert(rows: list[DeliveryMinute]) -> None:
    DeliveryMinute.objects.bulk_create(
        rows,
        batch_size=1_000,
        update_conflicts=True,
        unique_fields=["route", "span", "minute"],
        update_fields=["counts", "latency", "refreshed_at"],
    )


def compute_hours(hours: Iterable[datetime], *, now: datetime) -> list[DeliveryMinute]:
    """Hour rows (span 60): the sums of each hour's minute rows, per route."""
    rows: dict[tuple[int, datetime], DeliveryMinute] = {}
    for hour in hours:
        minutes = DeliveryMinute.objects.filter(
            span=1, minute__gte=hour, minute__lt=hour + timedelta(hours=1)
        ).values_list("route_id", "counts", "latency")
        for route_id, counts, latency in minutes:
            row = rows.setdefault(
                (route_id, hour),
                DeliveryMinute(
                    route_id=route_id, minute=hour, span=60, counts={}, latency={}, refreshed_at=now
                ),
            )
            merge(row.counts, counts)
            merge(row.latency, latency)
    return list(rows.values())


def dirty_minutes(*, since: datetime, not_before: datetime) -> list[datetime]:
    """Minutes with deliveries created, or finished, at or after ``since`` (none before ``not_before``)."""
    touched = Q(created_at__gte=since) | Q(finished_at__gte=since, created_at__gte=not_before)
    found = (
        Delivery.objects.filter(touched)
        .annotate(minute=TruncMinute("created_at"))
        .values_list("minute", flat=True)
        .distinct()
    )
    return sorted(set(found))


def compute(minutes: list[datetime], *, now: datetime) -> list[DeliveryMinute]:
    """Fresh DeliveryMinute rows for every route with deliveries in ``minutes``."""
    if not minutes:
        return []
    within = _ranges_q(minutes)
    rows: dict[tuple[int, datetime], DeliveryMinute] = {}

    def row(route_id: int, minute: datetime) -> DeliveryMinute:
        if (route_id, minute) not in rows:
            rows[route_id, minute] = DeliveryMinute(
                route_id=route_id, minute=minute, counts={}, latency={}, refreshed_at=now
            )
        return rows[route_id, minute]

    for route_id, minute, status, n in _status_counts(within):
        row(route_id, minute).counts[status] = n
    for route_id, minute, finished_at, emitted_at in _handled(within):
        bucket = str(bucket_of((finished_at - emitted_at).total_seconds() * 1000))
        latency = row(route_id, minute).latency
        latency[bucket] = latency.get(bucket, 0) + 1
    return list(rows.values())


def _status_counts(within: Q):
    return (
        Delivery.objects.filter(within)
        .annotate(minute=TruncMinute("created_at"))
        .values_list("route_id", "minute", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )


def _handled(within: Q):
    return (
        Delivery.objects.filter(within, status=Delivery.Status.SUCCEEDED, finished_at__isnull=False)
        .annotate(minute=TruncMinute("created_at"))
        .values_list("route_id", "minute", "finished_at", "event__time")
        .iterator(chunk_size=5_000)
    )


def _ranges_q(minutes: Iterable[datetime]) -> Q:
    # Contiguous minutes become one created_at range, so each is one index range scan.
    step = timedelta(minutes=1)
    ranges: list[list[datetime]] = []
    for minute in sorted(minutes):
        if ranges and ranges[-1][1] == minute:
            ranges[-1][1] = minute + step
        else:
            ranges.append([minute, minute + step])
    return reduce(operator.or_, (Q(created_at__gte=a, created_at__lt=b) for a, b in ranges))


def percentile(buckets: dict[str, int], fraction: float) -> float | None:
    """The ``fraction`` quantile in ms from bucket counts, interpolated within its bucket."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for index in sorted(int(k) for k in buckets):
        count = buckets[str(index)]
        if seen + count >= rank:
            lower, upper = bucket_bounds(index)
            return lower + (upper - lower) * ((rank - seen) / count)
        seen += count
    return bucket_bounds(max(int(k) for k in buckets))[1]


def merge(into: dict[str, int], more: dict[str, int]) -> None:
    """Add the counts of ``more`` to ``into``."""
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def window_sums(
    *, now: datetime, windows: list[timedelta], span: int = 1
) -> dict[tuple[int, str, str], list[int]]:
    """Summed counts and latency buckets per route over each window, in one query.

    ``span`` 1 reads minute rows (windows of whole minutes), 60 hour rows (whole
    hours). Keys are (route_id, "counts" or "latency", status or bucket); values hold
    one sum per window, in the order given. The JSON is expanded inside the database.
    """
    table = connection.ops.quote_name(DeliveryMinute._meta.db_table)
    expand = "jsonb_each_text" if connection.vendor == "postgresql" else "json_each"
    starts = [_floor(now - length, span) for length in windows]
    sums = ", ".join("SUM(CASE WHEN minute >= %s THEN CAST(j.value AS integer) ELSE 0 END)" for _ in starts)
    parts = [
        f"SELECT route_id, '{kind}', j.key, {sums} FROM {table}, {expand}({kind}) AS j "
        f"WHERE span = {int(span)} AND minute >= %s GROUP BY route_id, j.key"
        for kind in ("counts", "latency")
    ]
    params = [connection.ops.adapt_datetimefield_value(t) for t in [*starts, min(starts)] * 2]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {
            (route_id, kind, key): [int(v or 0) for v in values] for route_id, kind, key, *values in cursor
        }


def _floor(moment: datetime, span: int) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0) if span == 60 else moment
