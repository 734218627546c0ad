"""The releaser: held deliveries are sent again, oldest first, at each route's pace.

It runs in the worker's upkeep process (eventhub.worker.upkeep), every
``RELEASE_TICK_SECONDS`` while deliveries are held. Per route with held deliveries:

* paused: nothing;
* open, probe due: the oldest held delivery becomes the probe and is sent (half-open);
* closed: as many as ``release_per_second`` allows since the last release.

Releasers on several hosts may run at once: each takes a route's health row with
SKIP LOCKED (SQLite: the database's write lock), and the pace is kept in that row
(``release_next_at``), so the route's rate holds across all of them. Released
deliveries become ``pending`` and go through the outbox's send path, like any other.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import lockable, take_write_lock_if_needed
from eventhub.health import circuit
from eventhub.models import Delivery, Route, RouteHealth
from eventhub.outbox import Outgoing, route_table, send_deliveries

logger = logging.getLogger(__name__)

State = RouteHealth.State
# At most this much unused pace is kept: a round that comes late (a busy host) sends at most a fifth of
# a second's worth more, so no second ever sees much more than the route's rate.
CREDIT_SECONDS = 0.2
IDLE_SECONDS = 1.0


@dataclass(frozen=True)
class Round:
    """What one round found and did: routes with held deliveries, deliveries sent again."""

    routes: int
    sent: int


def release_once(*, now: datetime | None = None, batch_size: int | None = None) -> Round:
    """One round over every route with held deliveries."""
    size = batch_size or eventhub_settings.RELEASE_BATCH_SIZE
    held = Delivery.objects.filter(status=Delivery.Status.HELD).order_by().values_list("route_id", flat=True)
    route_ids = sorted(set(held.distinct()))
    sent = sum(_release_route(route_id, now=now or timezone.now(), size=size) for route_id in route_ids)
    return Round(routes=len(route_ids), sent=sent)


def _release_route(route_id: int, *, now: datetime, size: int) -> int:
    route = route_table.route(route_id)
    if route is None:
        return 0
    with transaction.atomic():
        take_write_lock_if_needed(RouteHealth)
        health = lockable(RouteHealth.objects.filter(route_id=route_id)).first()
        if health is None and not RouteHealth.objects.filter(route_id=route_id).exists():
            health = circuit.locked_health(route_id)  # held by hand, say: closed, not paused
        if health is None or health.paused:
            return 0  # another releaser has this route now, or it is paused
        if health.state != State.CLOSED:
            return _probe(health, route, now=now)
        count = _allowance(health, route, now=now, size=size)
        ids = _take_held(route_id, count)
        if ids:
            spent = timedelta(seconds=len(ids) / route.release_per_second)
            health.release_next_at = _paced_from(health, now) + spent
            health.save(update_fields=["release_next_at"])
        return _send(ids, route)


def _probe(health: RouteHealth, route: Route, *, now: datetime) -> int:
    if health.next_probe_at is not None and health.next_probe_at > now:
        return 0
    ids = _take_held(route.pk, 1)
    if not ids:
        return 0
    circuit.make_probe(health, delivery_id=ids[0], route=route, now=now)
    return _send(ids, route)


def _paced_from(health: RouteHealth, now: datetime) -> datetime:
    """When the next release may happen: the row's pace, but no more than CREDIT_SECONDS of credit."""
    floor = now - timedelta(seconds=CREDIT_SECONDS)
    return max(health.release_next_at or now, floor)


def _allowance(health: RouteHealth, route: Route, *, now: datetime, size: int) -> int:
    start = _paced_from(health, now)
    if start > now:
        return 0
    return min(size, int((now - start).total_seconds() * route.release_per_second) + 1)


def _take_held(route_id: int, count: int) -> list[int]:
    """Lock up to ``count`` of the route's oldest held deliveries and make them pending."""
    if count <= 0:
        return []
    rows = lockable(Delivery.objects.filter(route_id=route_id, status=Delivery.Status.HELD))
    ids = list(rows.order_by("created_at", "id").values_list("id", flat=True)[:count])
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.HELD).update(
        status=Delivery.Status.PENDING, queued_at=None
    )
    return ids


def _send(ids: list[int], route: Route) -> int:
    if not ids:
        return 0
    # Inside the transaction that took them: nobody else sends them; unsent ones stay pending for the relay.
    sent = send_deliveries([Outgoing.for_route(pk, route) for pk in ids])
    logger.info("Released %d held deliveries of route %s.", sent, route.name)
    return sent


def run_releaser(stop: threading.Event) -> None:
    """Release rounds until ``stop`` is set: every tick while deliveries are held, else every second."""
    while not stop.is_set():
        close_old_connections()
        try:
            found = release_once()
        except Exception:  # noqa: BLE001 - the loop must outlive a database or broker outage
            logger.exception("Release round failed; trying again shortly.")
            found = Round(routes=0, sent=0)
        stop.wait(eventhub_settings.RELEASE_TICK_SECONDS if found.routes else IDLE_SECONDS)
    connection.close()


def start_releaser(stop: threading.Event) -> threading.Thread:
    """Run :func:`run_releaser` in a daemon thread of this process (the upkeep's)."""
    thread = threading.Thread(target=run_releaser, args=(stop,), name="eventhub-releaser", daemon=True)
    thread.start()
    return thread
