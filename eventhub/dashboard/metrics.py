"""/metrics: Prometheus text format.

eventhub's own figures are computed from the database at scrape time, over a
sliding window (``EVENTHUB["METRICS_WINDOW_SECONDS"]``, 5 minutes by default).
The database already holds every event and delivery written by every web and
worker process on every host, so one scrape of any web process sees them all:
no prometheus_client multiprocess files to share, nothing lost when a worker
restarts. They are gauges over the window, not counters, so read them directly
(``sum by (route) (eventhub_deliveries_window)``) rather than through rate().
The pruner's figures are counters: the running sums each prune run records
(``eventhub_pruned_rows_total{kind}``), and when the last run finished.

Beside the window, the backlog as it stands (unfinished deliveries by status and
the age of the oldest: the relay's backlog is the ``pending`` one) and, with
discovery on, what Consul says about consumers: the figures docs/deployment.md
alerts on.

Dramatiq's own Prometheus middleware keeps per-process counters in a
multiprocess directory; when the web process can read that directory (the
``dramatiq_prom_db`` variable, Dramatiq's own), its metrics are included too.
"""

import hmac
import ipaddress
import os
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from eventhub import retention
from eventhub.conf import eventhub_settings
from eventhub.dashboard.selectors import RouteLoad, route_load, routes_without_consumers
from eventhub.discovery import live_consumers
from eventhub.models import Delivery, Event, Route, RouteHealth, RouteHealthChange

# Deliveries that are done, whatever else a status may be added for: everything else is backlog.
FINISHED = (Delivery.Status.SUCCEEDED, Delivery.Status.DEAD)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseCollector(Collector):
    """eventhub's figures over the last ``window``, read from the database on each scrape."""

    def __init__(self, window: timedelta, now: datetime | None = None) -> None:
        self.window = window
        self.now = now

    def collect(self):
        since = (self.now or timezone.now()) - self.window
        seconds = str(int(self.window.total_seconds()))
        yield self._events(since, seconds)
        yield self._deliveries(since, seconds)
        yield self._latency(since)
        yield from self._backlog()
        yield from self._consumers()
        yield from route_health_families()
        yield from self._pruned()
        yield from self._load()

    def _load(self):
        """Per route: its rate and in-flight count now, and its limits (issue 18)."""
        rate = GaugeMetricFamily(
            "eventhub_route_rate_per_second",
            "Deliveries finished per second over the last minute, by route.",
            labels=["route"],
        )
        in_flight = GaugeMetricFamily(
            "eventhub_route_in_flight", "Deliveries running now, by route.", labels=["route"]
        )
        rate_limit = GaugeMetricFamily(
            "eventhub_route_rate_limit", "A route's rate limit, deliveries per second.", labels=["route"]
        )
        max_in_flight = GaugeMetricFamily(
            "eventhub_route_max_in_flight", "A route's limit of deliveries in flight.", labels=["route"]
        )
        load = route_load(now=self.now)
        for route in Route.objects.only("pk", "name", "rate_limit", "max_in_flight"):
            figures = load.get(route.pk, RouteLoad())
            rate.add_metric([route.name], figures.rate)
            in_flight.add_metric([route.name], figures.in_flight)
            if route.rate_limit is not None:
                rate_limit.add_metric([route.name], route.rate_limit)
            if route.max_in_flight is not None:
                max_in_flight.add_metric([route.name], route.max_in_flight)
        yield from (rate, in_flight, rate_limit, max_in_flight)

    def _events(self, since: datetime, seconds: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "eventhub_events_window",
            "Events emitted in the window, by type.",
            labels=["type", "window_seconds"],
        )
        rows = Event.objects.filter(time__gte=since).values("type").annotate(n=Count("pk")).order_by()
        for row in rows:
            family.add_metric([row["type"], seconds], row["n"])
        return family

    def _deliveries(self, since: datetime, seconds: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "eventhub_deliveries_window",
            "Deliveries created in the window, by route and current status.",
            labels=["route", "status", "window_seconds"],
        )
        rows = (
            Delivery.objects.filter(created_at__gte=since)
            .values("route__name", "status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in rows:
            family.add_metric([row["route__name"], row["status"], seconds], row["n"])
        return family

    def _latency(self, since: datetime) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "eventhub_delivery_latency_seconds",
            "Emit (event time) to handled (finished) of deliveries that succeeded in the window, by route.",
            labels=["route"],
        )
        for route, buckets, total in latency_buckets(since=since):
            family.add_metric([route], buckets, sum_value=total)
        return family

    def _backlog(self):
        count = GaugeMetricFamily(
            "eventhub_deliveries_unfinished",
            "Deliveries not yet succeeded or dead, by status (all of them, not only the window's).",
            labels=["status"],
        )
        age = GaugeMetricFamily(
            "eventhub_oldest_unfinished_seconds",
            "Age of the oldest unfinished delivery by status; status=pending is the relay's backlog.",
            labels=["status"],
        )
        now = self.now or timezone.now()
        # Named statuses (not "not finished"), so that PostgreSQL reads them through the status index.
        unfinished = [status for status in Delivery.Status.values if status not in FINISHED]
        rows = (
            Delivery.objects.filter(status__in=unfinished)
            .values("status")
            # COUNT(*), not of the id: the status index then answers alone (no table read per row).
            .annotate(n=Count("*"), oldest=Min("created_at"))
            .order_by()
        )
        found = {row["status"]: row for row in rows}
        for status in unfinished:
            row = found.get(status)
            count.add_metric([status], row["n"] if row else 0)
            age.add_metric([status], max((now - row["oldest"]).total_seconds(), 0.0) if row else 0.0)
        return [count, age]

    def _consumers(self):
        live = live_consumers()
        if not live.enabled:
            return []  # discovery off: nothing is known about consumers
        up = GaugeMetricFamily("eventhub_consul_up", "1 when the Consul agent answered this scrape, else 0.")
        up.add_metric([], 0 if live.error else 1)
        if live.error:
            return [up]
        consumers = GaugeMetricFamily(
            "eventhub_consumers", "Worker processes registered in Consul, by health.", labels=["status"]
        )
        for status, n in sorted(Counter(c.status for c in live.registered).items()):
            consumers.add_metric([status], n)
        uncovered = GaugeMetricFamily(
            "eventhub_routes_without_consumer",
            "Enabled routes whose queue no passing worker consumes (1 per route).",
            labels=["route", "queue"],
        )
        for route in routes_without_consumers(live=live):
            uncovered.add_metric([route.name, route.queue], 1)
        return [up, consumers, uncovered]

    def _pruned(self):
        pruned = CounterMetricFamily(
            "eventhub_pruned_rows", "Rows the pruner deleted, over all its runs, by kind.", labels=["kind"]
        )
        for kind, count in retention.deleted_totals().items():
            pruned.add_metric([kind], count)
        yield pruned
        last = retention.last_run()
        if last is not None:
            yield GaugeMetricFamily(
                "eventhub_last_prune_timestamp_seconds",
                "When the last prune run finished (Unix time).",
                value=last.finished_at.timestamp(),
            )


HEALTH_STATES = ("closed", "open", "half_open", "paused")


def route_health_families() -> list:
    """Endpoint health per route: its state (1 for the current one), held deliveries, state changes."""
    state = GaugeMetricFamily(
        "eventhub_route_state",
        "The route's endpoint health: 1 for its current state (closed, open, half_open, paused), else 0.",
        labels=["route", "state"],
    )
    held = GaugeMetricFamily(
        "eventhub_deliveries_held", "Deliveries held because their route is open or paused.", labels=["route"]
    )
    changes = CounterMetricFamily(
        "eventhub_route_state_changes",
        "Recorded changes of the route's health, by the state changed to.",
        labels=["route", "state"],
    )
    names = dict(Route.objects.values_list("pk", "name"))
    current = {h.route_id: h.display_state for h in RouteHealth.objects.all()}
    counts = dict(
        Delivery.objects.filter(status=Delivery.Status.HELD)
        .values("route_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("route_id", "n")
    )
    for route_id, name in sorted(names.items(), key=lambda item: item[1]):
        for value in HEALTH_STATES:
            state.add_metric([name, value], 1 if current.get(route_id, "closed") == value else 0)
        held.add_metric([name], counts.get(route_id, 0))
    rows = RouteHealthChange.objects.values("route_id", "state").annotate(n=Count("pk")).order_by()
    for row in rows:
        if row["route_id"] in names:
            changes.add_metric([names[row["route_id"]], row["state"]], row["n"])
    return [state, held, changes]


def latency_buckets(*, since: datetime) -> list[tuple[str, list[tuple[str, int]], float]]:
    """Per route: cumulative (le, count) buckets and the sum in seconds, for deliveries since ``since``."""
    latency = ExpressionWrapper(F("finished_at") - F("event__time"), output_field=DurationField())
    aggregates = {
        f"le_{i}": Count("pk", filter=Q(latency__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(LATENCY_BUCKETS)
    }
    rows = (
        Delivery.objects.filter(
            created_at__gte=since, status=Delivery.Status.SUCCEEDED, finished_at__isnull=False
        )
        .annotate(latency=latency)
        .values("route__name")
        .annotate(n=Count("pk"), total=Sum("latency"), **aggregates)
        .order_by()
    )
    result = []
    for row in rows:
        buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(LATENCY_BUCKETS)]
        buckets.append(("+Inf", row["n"]))
        total = row["total"].total_seconds() if row["total"] is not None else 0.0
        result.append((row["route__name"], buckets, total))
    return result


def build_registry(*, window: timedelta | None = None) -> CollectorRegistry:
    """A registry with eventhub's database figures and, when readable, Dramatiq's worker metrics."""
    registry = CollectorRegistry(auto_describe=False)
    seconds = window or timedelta(seconds=eventhub_settings.METRICS_WINDOW_SECONDS)
    registry.register(DatabaseCollector(seconds))
    dramatiq_dir = os.environ.get("dramatiq_prom_db", "")  # noqa: SIM112 - Dramatiq spells it so
    if dramatiq_dir and os.path.isdir(dramatiq_dir):
        MultiProcessCollector(registry, path=dramatiq_dir)
    return registry


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why ``request`` may not read /metrics (a 401 or 403 response), or None when it may.

    A scraper sends ``Authorization: Bearer <METRICS_TOKEN>`` or comes from a network of
    ``METRICS_ALLOWED_NETWORKS``. With neither configured, /metrics is open only with DEBUG on.
    """
    token = eventhub_settings.METRICS_TOKEN
    networks = eventhub_settings.METRICS_ALLOWED_NETWORKS
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
    if networks and _address_allowed(request.META.get("REMOTE_ADDR", ""), networks):
        return None
    if token:
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    if networks:
        return HttpResponse("metrics are not served to this address\n", status=403, content_type="text/plain")
    if settings.DEBUG:
        return None
    return HttpResponse(
        "metrics are off: set EVENTHUB_METRICS_TOKEN or EVENTHUB_METRICS_ALLOWED_NETWORKS\n",
        status=403,
        content_type="text/plain",
    )


def _address_allowed(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition, for a scraper with the token or from an allowed address."""
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(build_registry()), content_type=CONTENT_TYPE)
