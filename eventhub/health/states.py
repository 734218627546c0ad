"""Each worker process's copy of the routes whose health needs a look, and the record of changes.

A delivery's gate (eventhub.health.gate) and its outcome (eventhub.health.circuit) read
this copy instead of the database: it holds only the routes that are open, half-open,
paused or have failures on record, so on a healthy installation it is empty and the
hot path asks nothing. It is re-read every ``EVENTHUB["HEALTH_REFRESH_SECONDS"]`` (a
background thread in worker processes), and at once after this process changed a
route's health. Every decision that matters is made again on the row itself
(conditional updates, row locks): a copy a second old only costs one more attempt, or
one more look at the row.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import ProcessCache
from eventhub.models import Route, RouteHealth, RouteHealthChange
from eventhub.outbox import route_table

logger = logging.getLogger(__name__)

State = RouteHealth.State


@dataclass(frozen=True)
class HealthView:
    """What the copy knows of one route's health."""

    route_id: int
    state: str
    paused: bool
    consecutive_failures: int
    window_failures: int
    next_probe_at: datetime | None
    probe_delivery_id: int | None

    @property
    def holds(self) -> bool:
        """Whether the route's deliveries are held (open, half-open or paused)."""
        return self.paused or self.state != State.CLOSED


FIELDS = (
    "route_id",
    "state",
    "paused",
    "consecutive_failures",
    "window_failures",
    "next_probe_at",
    "probe_delivery_id",
)


def _load(previous: dict[int, HealthView] | None) -> dict[int, HealthView]:
    rows = RouteHealth.objects.filter(
        Q(paused=True) | ~Q(state=State.CLOSED) | Q(consecutive_failures__gt=0) | Q(window_failures__gt=0)
    ).values_list(*FIELDS)
    return {row[0]: HealthView(*row) for row in rows}


_cache: ProcessCache[dict[int, HealthView]] = ProcessCache(
    _load,
    interval=lambda: eventhub_settings.HEALTH_REFRESH_SECONDS,
    empty={},
    committed_only=True,
    keep_on_error=True,  # a database away must not stop deliveries that would fail anyway
    name="route health",
)


def views() -> dict[int, HealthView]:
    """Routes with something to know about, by id (empty when every route is healthy)."""
    return _cache.get()


def view(route_id: int) -> HealthView | None:
    """What this process knows of ``route_id``'s health; None: closed, no failures on record."""
    return _cache.get().get(route_id)


def invalidate() -> None:
    """Read the health rows again on next use (this process just changed one).

    The route copy is read again too: emit() holds new deliveries of the routes it lists as holding.
    """
    _cache.invalidate()
    route_table.invalidate()


def reset() -> None:
    """Forget the copy (tests)."""
    _cache.reset()


def refresh_in_background() -> None:
    """Keep this process's copy fresh from a background thread (worker processes)."""
    _cache.refresh_in_background()


def stop_refreshing_in_background() -> None:
    """Stop the thread of :func:`refresh_in_background`."""
    _cache.stop_background()


def record_change(*, health: RouteHealth, previous: str, reason: str, user=None) -> RouteHealthChange:
    """Record and log (WARNING) a change of ``health``, already saved; ``previous`` its display state."""
    now = timezone.now()
    RouteHealth.objects.filter(pk=health.pk).update(reason=reason, changed_at=now)
    health.reason, health.changed_at = reason, now
    username = user.get_username() if user is not None else ""
    change = RouteHealthChange.objects.create(
        route_id=health.route_id,
        previous=previous,
        state=health.display_state,
        reason=reason,
        user=user if user is not None and user.pk else None,
        username=username,
    )
    name = Route.objects.filter(pk=health.route_id).values_list("name", flat=True).first()
    by = f" by {username}" if username else ""
    logger.warning("Route %s: %s -> %s%s: %s", name, previous, health.display_state, by, reason)
    invalidate()
    return change
