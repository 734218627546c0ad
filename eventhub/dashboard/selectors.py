"""Reads for the dashboard pages: bounded, index-backed queries.

Every query here is either LIMITed or bounded in time (at most the last day), so
a page costs the same with a thousand deliveries or ten million.
"""

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString

from eventhub import retention
from eventhub.conf import eventhub_settings
from eventhub.dashboard import charts, stats
from eventhub.discovery import LiveConsumers, live_consumers
from eventhub.models import (
    Delivery,
    DeliveryMinute,
    Event,
    EventType,
    HookFailure,
    PruneRun,
    Route,
    RouteHealth,
)

PROBLEM_STATUSES = (Delivery.Status.DEAD, Delivery.Status.RETRYING)
# Deliveries that have run at least once to an outcome; the success rate is over these.
RAN_STATUSES = (Delivery.Status.SUCCEEDED, Delivery.Status.DEAD, Delivery.Status.RETRYING)
TIME_RANGES: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}
# The windows of the per-route figures, shortest first.
FIGURE_WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    # From the hourly rollups, which outlive the delivery rows they count (docs/retention.md).
    "30d": timedelta(days=30),
}
# The windows read from minute rows; the longer ones read hour rows.
MINUTE_WINDOWS = ("5m", "1h")


@dataclass(frozen=True)
class DeliveryFilters:
    """What the operator narrowed the delivery lists to; empty fields match everything."""

    event_type: str = ""
    route: int | None = None
    status: str = ""
    range: str = ""
    q: str = ""
    errors: list[str] = field(default_factory=list, compare=False)

    @property
    def active(self) -> bool:
        return bool(self.event_type or self.route or self.status or self.range or self.q)


ROUTE_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also accepts "²"
MAX_TEXT = {"type": 200, "q": 500, "status": 20, "range": 10, "route": 20}


def _text(params, name: str, errors: list[str]) -> str:
    """A query parameter as clean text: at most MAX_TEXT[name] characters, no NUL (ignored otherwise)."""
    value = params.get(name, "")
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > MAX_TEXT[name] or "\x00" in value:
        errors.append(f"The {name} filter is too long or holds characters it cannot; it was ignored.")
        return ""
    return value


def parse_filters(params) -> DeliveryFilters:
    """Filters from a query string (a QueryDict or dict); unknown or malformed values are dropped,
    each with a message."""
    errors: list[str] = []
    status = _text(params, "status", errors)
    if status and status not in Delivery.Status.values and status != "problems":
        errors.append(f"Unknown status {status!r}.")
        status = ""
    time_range = _text(params, "range", errors)
    if time_range and time_range not in TIME_RANGES:
        errors.append(f"Unknown time range {time_range!r}.")
        time_range = ""
    route_raw = _text(params, "route", errors)
    route = int(route_raw) if ROUTE_ID.fullmatch(route_raw) else None
    if route_raw and route is None:
        errors.append(f"Unknown route {route_raw!r}.")
    return DeliveryFilters(
        event_type=_text(params, "type", errors),
        route=route,
        status=status,
        range=time_range,
        q=_text(params, "q", errors),
        errors=errors,
    )


def filtered_deliveries(filters: DeliveryFilters, *, now: datetime | None = None) -> QuerySet[Delivery]:
    """Deliveries matching ``filters``, newest first (not yet limited)."""
    qs = Delivery.objects.all()
    if filters.event_type:
        # Resolve to route ids first: a delivery's type is its route's type, and route_id is indexed.
        qs = qs.filter(
            route_id__in=list(
                Route.objects.filter(event_type__name=filters.event_type).values_list("pk", flat=True)
            )
        )
    if filters.route:
        qs = qs.filter(route_id=filters.route)
    if filters.status == "problems":
        qs = qs.filter(status__in=PROBLEM_STATUSES)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.range:
        qs = qs.filter(created_at__gte=(now or timezone.now()) - TIME_RANGES[filters.range])
    if filters.q:
        qs = qs.filter(_search(filters.q))
    return qs.order_by("-created_at", "-pk")


def _search(text: str) -> Q:
    # An event id (ours or the producer's) or an exact subject: both are index lookups.
    try:
        return Q(event_id=uuid.UUID(text))
    except ValueError:
        # A subquery, so each side uses its own index instead of scanning events for the OR.
        matching = Event.objects.filter(Q(subject=text) | Q(external_id=text)).values("pk")
        return Q(event_id__in=matching)


def recent_deliveries(filters: DeliveryFilters | None = None, *, limit: int = 50) -> list[Delivery]:
    """The newest deliveries matching ``filters``, with their event and route."""
    qs = filtered_deliveries(filters or DeliveryFilters())
    return list(qs.select_related("event", "route")[:limit])


def problem_deliveries(
    filters: DeliveryFilters | None = None, *, limit: int = 20, now: datetime | None = None
) -> list[Delivery]:
    """Stuck deliveries, then the newest dead and retrying ones, matching ``filters`` (not its status)."""
    filters = filters or DeliveryFilters()
    unfiltered_status = DeliveryFilters(
        event_type=filters.event_type, route=filters.route, range=filters.range, q=filters.q
    )
    qs = filtered_deliveries(unfiltered_status).filter(status__in=PROBLEM_STATUSES)
    stuck = stuck_deliveries(unfiltered_status, limit=limit, now=now)
    return stuck + list(qs.select_related("event", "route")[:limit])


def stuck_deliveries(
    filters: DeliveryFilters | None = None, *, limit: int = 20, now: datetime | None = None
) -> list[Delivery]:
    """Deliveries ``running`` for longer than their route's time limit, longest first.

    Their worker died or their process exited without handing them back; the relay's
    rescue sends them again later (RELAY_STALE_RUNNING_SECONDS past the limit). Each
    gets ``stuck_for``, how long it has been running.
    """
    now = now or timezone.now()
    shortest = Route.objects.aggregate(shortest=Min("time_limit_ms"))["shortest"]
    if shortest is None:
        return []
    since = now - timedelta(milliseconds=shortest)
    running = filtered_deliveries(filters or DeliveryFilters()).filter(
        status=Delivery.Status.RUNNING, started_at__lt=since
    )
    # Few rows are running at once; the per-route limit is checked here rather than in SQL.
    candidates = running.select_related("event", "route").order_by("started_at")[: limit * 5]
    stuck = [d for d in candidates if now - d.started_at > timedelta(milliseconds=d.route.time_limit_ms)]
    for delivery in stuck:
        delivery.stuck_for = now - delivery.started_at
    return stuck[:limit]


def event_with_deliveries(*, event_id) -> tuple[Event, list[Delivery]]:
    """An event and its deliveries with their attempts."""
    event = Event.objects.select_related("event_type").get(pk=event_id)
    deliveries = list(event.deliveries.select_related("route").prefetch_related("attempt_log").order_by("pk"))
    return event, deliveries


def filter_choices() -> dict[str, list]:
    """Event types, routes and statuses for the filter form."""
    return {
        "event_types": list(EventType.objects.order_by("name").values_list("name", flat=True)),
        "routes": list(Route.objects.order_by("name").values_list("pk", "name")),
        "statuses": [("problems", "dead or retrying"), *((s, s) for s in Delivery.Status.values)],
        "ranges": [("5m", "last 5 minutes"), ("1h", "last hour"), ("24h", "last day"), ("7d", "last 7 days")],
    }


# --- per-route figures ---------------------------------------------------------------------------


@dataclass
class WindowFigures:
    """One route over one window: deliveries, success rate among those that ran, latency in ms."""

    deliveries: int = 0
    succeeded: int = 0
    ran: int = 0
    latency: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.ran if self.ran else None

    @property
    def p50_ms(self) -> float | None:
        return stats.percentile(self.latency, 0.5)

    @property
    def p95_ms(self) -> float | None:
        return stats.percentile(self.latency, 0.95)


@dataclass(frozen=True)
class RouteHealthSummary:
    """A route's endpoint health as the dashboard shows it: state, held deliveries, the last change."""

    state: str = "closed"  # closed, open, half_open or paused
    held: int = 0
    reason: str = ""
    changed_at: datetime | None = None

    @property
    def label(self) -> str:
        return self.state.replace("_", "-")


def route_health() -> dict[int, RouteHealthSummary]:
    """Per route id with anything to show: its health state, held count and last change (two queries)."""
    held = dict(
        Delivery.objects.filter(status=Delivery.Status.HELD)
        .values("route_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("route_id", "n")
    )
    rows = {h.route_id: h for h in RouteHealth.objects.all()}
    summaries = {}
    for route_id in set(held) | set(rows):
        row = rows.get(route_id)
        summaries[route_id] = RouteHealthSummary(
            state=row.display_state if row else "closed",
            held=held.get(route_id, 0),
            reason=row.reason if row else "",
            changed_at=row.changed_at if row else None,
        )
    return summaries


@dataclass(frozen=True)
class RouteLoad:
    """A route's load now: deliveries finished per second over the last minute, and running now."""

    rate: float = 0.0
    in_flight: int = 0


LOAD_SECONDS = 60


def route_load(*, now: datetime | None = None) -> dict[int, RouteLoad]:
    """Per route id with any load: its rate over the last LOAD_SECONDS and its deliveries running now.

    Running is the status a worker's claim sets, on every host, so this is the route's
    in-flight count as its ``max_in_flight`` limit counts it (issue 18). Two index-backed
    queries: finished in the last minute (delivery_finished) and running (delivery_status_created).
    """
    now = now or timezone.now()
    finished = (
        Delivery.objects.filter(finished_at__gt=now - timedelta(seconds=LOAD_SECONDS))
        .values_list("route_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    running = (
        Delivery.objects.filter(status=Delivery.Status.RUNNING)
        .values_list("route_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    rates, flying = dict(finished), dict(running)
    return {
        route_id: RouteLoad(rate=rates.get(route_id, 0) / LOAD_SECONDS, in_flight=flying.get(route_id, 0))
        for route_id in rates.keys() | flying.keys()
    }


@dataclass
class RouteFigures:
    """A route, its figures per window key ("5m", "1h", "24h"), its last hour by minute, its load now."""

    route: Route
    windows: dict[str, WindowFigures]
    activity: list[charts.Bar] = field(default_factory=list)
    health: RouteHealthSummary = field(default_factory=RouteHealthSummary)
    load: RouteLoad = field(default_factory=RouteLoad)

    @property
    def failed_last_hour(self) -> int:
        return sum(bar.failed for bar in self.activity)

    @property
    def sparkline(self) -> SafeString:
        return charts.sparkline_svg(self.activity, label=self.route.name)


ACTIVITY_MINUTES = 60


def route_figures(*, now: datetime | None = None) -> list[RouteFigures]:
    """Per-route deliveries, success rate and emit→handled p50/p95 over 5 minutes, an hour, a day and
    30 days, each route's deliveries per minute over the last hour (for its sparkline), its endpoint
    health and its load now.

    Read from the per-minute rollups (eventhub/dashboard/stats.py), refreshed first; a window
    covers whole minutes. Routes without deliveries show zeros.
    """
    now = now or timezone.now()
    stats.refresh(now=now)
    keys = list(FIGURE_WINDOWS)
    figures = {
        route.pk: RouteFigures(route=route, windows={key: WindowFigures() for key in keys})
        for route in Route.objects.select_related("event_type").order_by("name")
    }
    # Short windows from minute rows; the day and the month from hour rows, so the day reads 24 rows
    # a route, not 1440, and the month still counts deliveries the pruner has deleted since.
    short = [k for k in keys if k in MINUTE_WINDOWS]
    long = [k for k in keys if k not in MINUTE_WINDOWS]
    by_minute = stats.window_sums(now=now, windows=[FIGURE_WINDOWS[k] for k in short])
    by_hour = stats.window_sums(now=now, windows=[FIGURE_WINDOWS[k] for k in long], span=60)
    for window_keys, sums in ((short, by_minute), (long, by_hour)):
        for (route_id, kind, name), values in sums.items():
            if route_id in figures:
                for key, value in zip(window_keys, values, strict=True):
                    _add(figures[route_id].windows[key], kind, name, value)
    activity = route_activity(minutes=ACTIVITY_MINUTES, now=now)
    healths = route_health()
    load = route_load(now=now)
    for route_id, route in figures.items():
        route.activity = activity.get(route_id) or charts.minute_bars([], minutes=ACTIVITY_MINUTES, now=now)
        route.health = healths.get(route_id) or RouteHealthSummary()
        route.load = load.get(route_id, RouteLoad())
    return list(figures.values())


def route_activity(*, minutes: int, now: datetime) -> dict[int, list[charts.Bar]]:
    """Per route id, one Bar per minute of the last ``minutes`` (deliveries created, by status)."""
    rows: dict[int, list[dict]] = {}
    for route_id, minute, counts in _minute_rows(now, timedelta(minutes=minutes - 1)):
        rows.setdefault(route_id, []).extend(
            {"minute": minute, "status": status, "n": n} for status, n in counts.items()
        )
    return {route_id: charts.minute_bars(r, minutes=minutes, now=now) for route_id, r in rows.items()}


def _add(window: WindowFigures, kind: str, name: str, value: int) -> None:
    if kind == "latency":
        if value:
            window.latency[name] = value
        return
    window.deliveries += value
    if name == Delivery.Status.SUCCEEDED:
        window.succeeded += value
    if name in RAN_STATUSES:
        window.ran += value


def _minute_rows(now: datetime, span: timedelta):
    return DeliveryMinute.objects.filter(
        span=1, minute__gte=(now - span).replace(second=0, microsecond=0)
    ).values_list("route_id", "minute", "counts")


def per_minute_counts(*, minutes: int = 60, now: datetime | None = None) -> list[dict]:
    """Deliveries created per minute and status over the last ``minutes`` minutes, all routes."""
    now = now or timezone.now()
    stats.refresh(now=now)
    totals: dict[tuple[datetime, str], int] = {}
    for _, minute, counts in _minute_rows(now, timedelta(minutes=minutes - 1)):
        for status, n in counts.items():
            totals[minute, status] = totals.get((minute, status), 0) + n
    return [{"minute": m, "status": s, "n": n} for (m, s), n in sorted(totals.items())]


# --- consumers (from Consul) ---------------------------------------------------------------------


@dataclass
class ConsumerHealth:
    """What the dashboard knows about consumers: discovery on or off, workers, and orphaned routes."""

    enabled: bool
    consumers: list = field(default_factory=list)
    error: str = ""
    # Enabled routes whose queue no passing consumer consumes (only known with discovery on).
    uncovered_routes: list[Route] = field(default_factory=list)


def consumer_health() -> ConsumerHealth:
    """Workers registered in Consul with their health, and enabled routes nobody healthy consumes.

    Discovery is off when CONSUL_HTTP_ADDR is unset; an unreachable agent is reported, not raised.
    The agent is asked once, through :func:`eventhub.discovery.liveness.live_consumers`.
    """
    live = live_consumers()
    return ConsumerHealth(
        enabled=live.enabled,
        consumers=list(live.registered),
        error=live.error,
        uncovered_routes=routes_without_consumers(live=live),
    )


def routes_without_consumers(*, live: LiveConsumers | None = None) -> list[Route]:
    """Enabled routes, by name, whose queue no passing worker in Consul consumes.

    ``live`` is what the agent already answered; without it the agent is asked. Empty
    when discovery is off or the agent could not be asked (nothing is known then;
    :func:`consumer_health` reports which).
    """
    live = live if live is not None else live_consumers()
    if not live.known:
        return []
    healthy_queues = live.queues
    return [r for r in Route.objects.filter(enabled=True).order_by("name") if r.queue not in healthy_queues]


def recent_hook_failures(limit: int = 20) -> QuerySet:
    """The newest signal hook failures (saves whose event was not emitted), newest first."""
    return HookFailure.objects.order_by("-created_at", "-pk")[:limit]


# --- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionSummary:
    """The dashboard's retention panel: the settings, and what the last prune run deleted."""

    settings: dict[str, int]
    last_run: PruneRun | None
    overrides: list[tuple[str, int | None, int | None]]

    @property
    def last_counts(self) -> list[tuple[str, int]]:
        counts = self.last_run.counts if self.last_run else {}
        return [(kind.replace("_", " "), int(counts.get(kind, 0))) for kind in retention.KINDS]


def retention_summary() -> RetentionSummary:
    """The retention settings, the event types that override them, and the last prune run."""
    names = ("SUCCEEDED", "DEAD", "HOOK_FAILURES", "TRIALS", "ROLLUP")
    overrides = EventType.objects.filter(
        Q(retention_succeeded_days__isnull=False) | Q(retention_dead_days__isnull=False)
    ).values_list("name", "retention_succeeded_days", "retention_dead_days")
    return RetentionSummary(
        settings={
            name.lower().replace("_", " "): getattr(eventhub_settings, f"RETENTION_{name}_DAYS")
            for name in names
        },
        last_run=retention.last_run(),
        overrides=list(overrides[:20]),
    )
