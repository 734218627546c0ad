"""The per-process copy of event types and routes that emit() and the worker read.

Every emit needs the event type and its enabled routes, and every delivery its
route. Asking the database each time costs a round trip, and turning the rows
into objects costs more than the rest of an emit. They change rarely (an operator
edits them in the admin), so each process keeps them all in memory and reloads
them at most every ``EVENTHUB["ROUTES_REFRESH_SECONDS"]``: an edit in another
process takes effect within that time, an edit in this process at once (saves
and deletes of event types and routes invalidate the copy).

The copy is only ever loaded outside a transaction, from committed rows; inside
one, a stale copy is bypassed and the rows are read directly, so a route created
in the caller's uncommitted transaction is seen by that transaction only.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction

from eventhub.conf import eventhub_settings
from eventhub.errors import UnknownEventType
from eventhub.models import EventType, Route


@dataclass(frozen=True)
class RouteTable:
    """Event types by name, enabled routes by event type id (by primary key), every route by id."""

    types: dict[str, EventType] = field(default_factory=dict)
    enabled: dict[int, list[Route]] = field(default_factory=dict)
    routes: dict[int, Route] = field(default_factory=dict)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.table: RouteTable | None = None
        self.loaded_at = float("-inf")


_cache = _Cache()


def load() -> RouteTable:
    """Read every event type and route from the database (two queries)."""
    types = {t.pk: t for t in EventType.objects.all()}
    table = RouteTable(types={t.name: t for t in types.values()})
    for route in Route.objects.order_by("pk"):
        route.event_type = types[route.event_type_id]  # no query when a destination reads it
        table.routes[route.pk] = route
        if route.enabled:
            table.enabled.setdefault(route.event_type_id, []).append(route)
    return table


def current() -> RouteTable:
    """The table, reloaded when older than the refresh interval (or read directly inside a transaction)."""
    table = _cache.table
    if table is not None and time.monotonic() - _cache.loaded_at < eventhub_settings.ROUTES_REFRESH_SECONDS:
        return table
    return _read()


def _read() -> RouteTable:
    """Read the table; keep it only when read outside a transaction (from committed rows)."""
    if connection.in_atomic_block:
        return load()
    started = time.monotonic()
    table = load()
    with _cache.lock:
        _cache.table, _cache.loaded_at = table, started
    return table


def types_and_routes(names: Iterable[str]) -> tuple[dict[str, EventType], dict[int, list[Route]]]:
    """The named event types (all active, or UnknownEventType) and the table's enabled routes by type id."""
    table = current()
    types = {}
    for name in sorted(set(names)):
        event_type = table.types.get(name)
        if event_type is None:
            raise UnknownEventType(f"Unknown event type {name!r}: create it in the admin first.")
        if not event_type.active:
            raise UnknownEventType(f"Event type {name!r} is inactive and accepts no events.")
        types[name] = event_type
    return types, table.enabled


def route(route_id: int) -> Route | None:
    """Route ``route_id`` (enabled or not), reloading once when this process has not seen it yet."""
    found = current().routes.get(route_id)
    return found if found is not None else _read().routes.get(route_id)


def connect_invalidation() -> None:
    """Invalidate the table when this process saves or deletes an event type or route (and at commit)."""
    from django.db.models import signals

    for model in (EventType, Route):
        uid = f"eventhub.route_table.{model.__name__}"
        signals.post_save.connect(_changed, sender=model, dispatch_uid=f"{uid}.post_save")
        signals.post_delete.connect(_changed, sender=model, dispatch_uid=f"{uid}.post_delete")


def _changed(sender, **kwargs) -> None:
    invalidate()
    # Another thread may reload from committed rows before this transaction commits.
    transaction.on_commit(invalidate)


def invalidate() -> None:
    """Make the next read load the table again (an event type or route was saved or deleted here)."""
    with _cache.lock:
        _cache.table, _cache.loaded_at = None, float("-inf")
