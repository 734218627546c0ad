"""The per-process copy of event types and routes that emit() and the worker read.

Every emit needs the event type and its enabled routes, and every delivery its
route. Asking the database each time costs a round trip, and turning the rows
into objects costs more than the rest of an emit. They change rarely (an operator
edits them in the admin), so each process keeps them all in memory and reloads
them at most every ``EVENTHUB["ROUTES_REFRESH_SECONDS"]``: an edit in another
process takes effect within that time, an edit in this process at once (saves
and deletes of event types and routes invalidate the copy). Worker and web
processes reload it in a background thread (:func:`refresh_in_background`),
so no emit or delivery waits for a reload.

The copy is only ever loaded outside a transaction, from committed rows; inside
one, a stale copy is bypassed and the rows are read directly, so a route created
in the caller's uncommitted transaction is seen by that transaction only.
"""

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models import Q, signals

from eventhub.conf import eventhub_settings
from eventhub.db import ProcessCache
from eventhub.errors import UnknownEventType
from eventhub.models import EventType, Route, RouteHealth


@dataclass(frozen=True)
class RouteTable:
    """Event types by name, enabled routes by event type id (by primary key), every route by id."""

    types: dict[str, EventType] = field(default_factory=dict)
    enabled: dict[int, list[Route]] = field(default_factory=dict)
    routes: dict[int, Route] = field(default_factory=dict)
    version: str = ""  # a digest of every row it was read from ("" where not computed)
    # Routes whose new deliveries are held at emit (open, half-open or paused; issue 18): read on every
    # reload, outside the digest, since a route's health row changes with every failure counted.
    holding: frozenset[int] = frozenset()


def load(previous: RouteTable | None = None) -> RouteTable:
    """Read every event type and route (two queries), or keep ``previous`` when no row changed.

    On PostgreSQL one query first asks for a digest of both tables' rows: the periodic
    reload then costs that one round trip, not two queries turned into model
    instances, unless something changed (any column, by any means: admin, a queryset
    update, another process).
    """
    version, holding = _version_and_holding()
    if previous is not None and version and previous.version == version:
        return previous if previous.holding == holding else dataclasses.replace(previous, holding=holding)
    types = {t.pk: t for t in EventType.objects.all()}
    table = RouteTable(types={t.name: t for t in types.values()}, version=version, holding=holding)
    for route in Route.objects.order_by("pk"):
        route.event_type = types[route.event_type_id]  # no query when a destination reads it
        table.routes[route.pk] = route
        if route.enabled:
            table.enabled.setdefault(route.event_type_id, []).append(route)
    return table


def _version_and_holding() -> tuple[str, frozenset[int]]:
    """The digest of both tables' rows ("" off PostgreSQL) and the routes that hold: one round trip."""
    if connection.vendor != "postgresql":
        return "", frozenset(_holding_routes().values_list("route_id", flat=True))
    qn = connection.ops.quote_name
    digests = ", ".join(
        f"(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.{qn(m._meta.pk.column)}), '')) "
        f"FROM {qn(m._meta.db_table)} t)"
        for m in (EventType, Route)
    )
    holding_sql, params = _holding_routes().values("route_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {digests}, ARRAY({holding_sql})", params)
        *versions, holding = cursor.fetchone()
    return ":".join(versions), frozenset(holding)


def _holding_routes():
    State = RouteHealth.State
    return RouteHealth.objects.filter(Q(paused=True) | ~Q(state=State.CLOSED))


def current() -> RouteTable:
    """The table, reloaded when older than the refresh interval (or read directly inside a transaction)."""
    return _cache.get()


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


def holding() -> frozenset[int]:
    """Ids of the routes whose new deliveries are held at emit: open, half-open or paused (issue 18)."""
    return current().holding


def route(route_id: int) -> Route | None:
    """Route ``route_id`` (enabled or not), reloading once when this process has not seen it yet."""
    found = current().routes.get(route_id)
    return found if found is not None else _cache.refresh().routes.get(route_id)


_cache: ProcessCache[RouteTable] = ProcessCache(
    load,
    interval=lambda: eventhub_settings.ROUTES_REFRESH_SECONDS,
    empty=RouteTable(),
    committed_only=True,  # a route in the caller's uncommitted transaction is seen by it only
    name="routes",
)


def refresh_in_background() -> None:
    """Keep this process's table fresh from a background thread (worker and web processes, at start).

    Readers then never reload it themselves when the interval passes: a reload costs
    milliseconds that would otherwise land on one emit, or in a worker process on every
    thread waiting for the combined write (see eventhub.db.process_cache).
    """
    _cache.refresh_in_background()


def stop_refreshing_in_background() -> None:
    """Stop the background thread of :func:`refresh_in_background` (worker shutdown, tests)."""
    _cache.stop_background()


def connect_invalidation() -> None:
    """Invalidate the table when this process saves or deletes an event type or route (and at commit)."""
    for model in (EventType, Route):
        uid = f"eventhub.outbox.route_table.{model.__name__}"
        signals.post_save.connect(_changed, sender=model, dispatch_uid=f"{uid}.post_save")
        signals.post_delete.connect(_changed, sender=model, dispatch_uid=f"{uid}.post_delete")
    setting_changed.connect(_setting_changed, dispatch_uid="eventhub.route_table.setting_changed")


def _setting_changed(setting, **kwargs) -> None:
    if setting == "EVENTHUB":
        _cache.settings_changed()


def _changed(sender, **kwargs) -> None:
    invalidate()
    # Another thread may reload from committed rows before this transaction commits.
    transaction.on_commit(invalidate)


def invalidate() -> None:
    """Make the next read load the table again (an event type or route was saved or deleted here)."""
    _cache.invalidate()
