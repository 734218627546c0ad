"""How long finished work is kept: the settings, per-type overrides, and the checks that refuse too little.

Retention counts from when a delivery was created (emitted), through the (route, status,
created_at) index. It must be at least a day, because the dashboard recomputes the last
day's per-minute figures from the delivery rows (eventhub/dashboard/stats.py), and at
least the longest retry window of the type's routes: a delivery may take that long to
finish, and its whole history (attempts, and its event's other deliveries) should still
be there to read when it does.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from eventhub.conf import eventhub_settings
from eventhub.models import EventType, Route

# The dashboard recomputes the figures of the last day from delivery rows; a delivery pruned
# sooner would drop out of its minute's figures when that minute is recomputed.
MIN_DAYS = 1
DAY_SETTINGS = (
    "RETENTION_SUCCEEDED_DAYS",
    "RETENTION_DEAD_DAYS",
    "RETENTION_HOOK_FAILURES_DAYS",
    "RETENTION_TRIALS_DAYS",
    "RETENTION_ROLLUP_DAYS",
)
MAX_BATCH = 10_000


class RetentionTooShort(ImproperlyConfigured):
    """A retention (global or an event type's) is shorter than a route's longest retry window."""


@dataclass(frozen=True)
class Retention:
    """The days finished deliveries of one event type are kept."""

    succeeded_days: int
    dead_days: int

    @property
    def shortest(self) -> timedelta:
        return timedelta(days=min(self.succeeded_days, self.dead_days))


def check_settings() -> None:
    """Refuse (ImproperlyConfigured) retention and pruning settings that make no sense; called at start."""
    for name in DAY_SETTINGS:
        value = getattr(eventhub_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < MIN_DAYS:
            raise ImproperlyConfigured(
                f'EVENTHUB["{name}"] = {value!r}: give a whole number of days, at least {MIN_DAYS} '
                "(the dashboard recomputes the last day's figures from the delivery rows)."
            )
    interval = eventhub_settings.PRUNE_INTERVAL_SECONDS
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        raise ImproperlyConfigured(
            f'EVENTHUB["PRUNE_INTERVAL_SECONDS"] = {interval!r}: give seconds (0 switches the '
            "worker's pruning off)."
        )
    size = eventhub_settings.PRUNE_BATCH_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH:
        raise ImproperlyConfigured(
            f'EVENTHUB["PRUNE_BATCH_SIZE"] = {size!r}: give a whole number from 1 to {MAX_BATCH} '
            "(rows deleted per short transaction)."
        )


def retention_of(event_type: EventType) -> Retention:
    """The retention of ``event_type``: its own overrides, or the global settings."""
    return Retention(
        succeeded_days=event_type.retention_succeeded_days or eventhub_settings.RETENTION_SUCCEEDED_DAYS,
        dead_days=event_type.retention_dead_days or eventhub_settings.RETENTION_DEAD_DAYS,
    )


def retry_window(*, max_attempts: int, max_backoff_ms: int, time_limit_ms: int) -> timedelta:
    """The longest a delivery with this retry policy can take from first attempt to dead.

    Every attempt may run its whole time limit and wait the longest backoff before the next.
    """
    return timedelta(milliseconds=max_attempts * (time_limit_ms + max_backoff_ms))


def route_window(route: Route) -> timedelta:
    """:func:`retry_window` of a route's own retry policy."""
    return retry_window(
        max_attempts=route.max_attempts,
        max_backoff_ms=route.max_backoff_ms,
        time_limit_ms=route.time_limit_ms,
    )


def too_short(*, retention: Retention, windows: list[tuple[str, timedelta]]) -> str:
    """Why ``retention`` is too short for routes with these (name, retry window) pairs, or ""."""
    if not windows:
        return ""
    name, longest = max(windows, key=lambda pair: pair[1])
    if retention.shortest >= longest:
        return ""
    return (
        f"Retention of {min(retention.succeeded_days, retention.dead_days)} days is shorter than the "
        f"retry window of route {name!r} ({_days(longest)}: max attempts × (time limit + max backoff)); "
        "keep finished deliveries at least that long, or shorten the route's retry policy."
    )


def check_routes() -> None:
    """Refuse (RetentionTooShort) when any event type keeps finished deliveries for less than the
    longest retry window of its routes. Called when the worker and the pruner start."""
    problems = []
    for event_type in EventType.objects.prefetch_related("routes"):
        windows = [(route.name, route_window(route)) for route in event_type.routes.all()]
        reason = too_short(retention=retention_of(event_type), windows=windows)
        if reason:
            problems.append(f"{event_type.name}: {reason}")
    if problems:
        raise RetentionTooShort(" ".join(problems))


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86_400:.1f} days"
