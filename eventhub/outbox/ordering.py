"""Ordering per key: deliveries of a route with the same key run one at a time, in emit order.

A route's ``ordering_key`` is a template over the envelope (eventhub.events.keys).
At emit each delivery gets its key and a number in that key's line: emit takes the
key's :class:`~eventhub.models.OrderingKey` row (a row lock held until the emitting
transaction commits) and counts on from its last number, so numbers follow the
order in which emitters commit, on any number of processes and hosts.

Every delivery is sent as usual. When a worker has claimed one, :func:`may_run`
lets it run only if it is the *head* of its line: the lowest-numbered delivery of
its key that is not finished (succeeded or dead). Otherwise it becomes ``waiting``
and its message is done with. When a delivery finishes, :func:`release` sends the
new head if it is waiting. A failing delivery stays the head while it is retried,
so it holds back its own key, and only its own key, until it succeeds or is dead;
then the next one runs.

Both sides write first and then read (the waiting mark, or the outcome, is committed
before the head is looked up), so whichever of two racing workers reads last sees
the other's write: a waiting head is never left behind. A replayed delivery goes to
the back of its line (:func:`renumber`).
"""

import functools
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import Combiner, sqlbatch
from eventhub.events import render_key
from eventhub.models import Delivery, OrderingKey, Route
from eventhub.outbox import route_table
from eventhub.outbox.message import Outgoing
from eventhub.outbox.send import send_deliveries

logger = logging.getLogger(__name__)

FINISHED = (Delivery.Status.SUCCEEDED, Delivery.Status.DEAD)
CHUNK = 200
PRUNE_EVERY_SECONDS = 600.0
_last_prune = 0.0


def key_of(route: Route, envelope: dict[str, Any]) -> str | None:
    """The delivery's ordering key for ``envelope`` on ``route``; None: not ordered."""
    return render_key(route.ordering_key, envelope) if route.ordering_key else None


def any_ordered(routes: dict[int, list[Route]], type_ids: set[int]) -> bool:
    """Whether any of these event types' routes orders its deliveries by key."""
    return any(route.ordering_key for type_id in type_ids for route in routes.get(type_id, ()))


def number(deliveries: Sequence[Delivery]) -> None:
    """Give each keyed delivery the next number in its key's line, in the order given.

    Takes each key's row lock (in a fixed order, so emitters never deadlock); it is
    held until the caller's transaction ends. Call inside that transaction.
    """
    lines: dict[tuple[int, str], list[Delivery]] = {}
    for delivery in deliveries:
        if delivery.ordering_key is not None:
            lines.setdefault((delivery.route_id, delivery.ordering_key), []).append(delivery)
    keys = sorted(lines)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        last = _advance([(route_id, key, len(lines[route_id, key])) for route_id, key in chunk])
        for route_id, key in chunk:
            line = lines[route_id, key]
            for offset, delivery in enumerate(line):
                delivery.ordering_seq = last[route_id, key] - len(line) + 1 + offset


def renumber(deliveries: Sequence[Delivery]) -> None:
    """Put stored keyed deliveries at the back of their lines (a replay); inside a transaction."""
    keyed = [d for d in deliveries if d.ordering_key is not None]
    if keyed:
        number(keyed)
        Delivery.objects.bulk_update(keyed, ["ordering_seq"])


def _advance(counts: list[tuple[int, str, int]]) -> dict[tuple[int, str], int]:
    """Add ``count`` to each key's last number (creating the row); returns the new last numbers."""
    qn = connection.ops.quote_name
    table = qn(OrderingKey._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    values = ", ".join(["(%s, %s, %s, %s)"] * len(counts))
    sql = (
        f"INSERT INTO {table} ({qn('route_id')}, {qn('key')}, {qn('last_seq')}, {qn('updated_at')}) "
        f"VALUES {values} ON CONFLICT ({qn('route_id')}, {qn('key')}) DO UPDATE SET "
        f"{qn('last_seq')} = {table}.{qn('last_seq')} + excluded.{qn('last_seq')}, "
        f"{qn('updated_at')} = excluded.{qn('updated_at')} "
        f"RETURNING {qn('route_id')}, {qn('key')}, {qn('last_seq')}"
    )
    params = [value for route_id, key, count in counts for value in (route_id, key, count, now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(route_id, key): last for route_id, key, last in cursor.fetchall()}


Head = tuple[int, str] | None


def _head(route_id: int, key: str) -> Head:
    """(id, status) of the lowest-numbered unfinished delivery of the key (twice per ordered delivery).

    Outside a transaction on PostgreSQL, a worker process's concurrent lookups run
    as one statement (eventhub.db.combining), after each caller's own write committed.
    """
    if sqlbatch.supported() and not connection.in_atomic_block:
        return _heads.submit((route_id, key))
    return _head_batch([(route_id, key)])[0]


def _head_batch(keys: Sequence[tuple[int, str]]) -> list[Head]:
    if not sqlbatch.supported():
        found = [sqlbatch.execute(_head_sql(), key)[0] for key in keys]
        return [tuple(rows[0]) if rows else None for rows in found]
    route_ids, names = [k[0] for k in keys], [k[1] for k in keys]
    rows, _ = sqlbatch.execute(_heads_sql(), (route_ids, names), prepare=True)
    heads: dict[int, Head] = {index: (pk, status) for pk, status, index in rows}
    return [heads.get(index) for index in range(1, len(keys) + 1)]


_heads: Combiner[tuple[int, str], Head] = Combiner(_head_batch)


def _columns() -> tuple[str, dict[str, str]]:
    qn, meta = connection.ops.quote_name, Delivery._meta
    names = ("id", "status", "route", "ordering_key", "ordering_seq")
    return qn(meta.db_table), {name: qn(meta.get_field(name).column) for name in names}


@functools.cache
def _head_sql() -> str:
    table, c = _columns()
    # The finished statuses are literals, not parameters: a prepared (generic) plan must see that the
    # query implies the partial index's condition, or it could not use delivery_ordering_head.
    finished = ", ".join(f"'{status}'" for status in FINISHED)
    return (
        f"SELECT d.{c['id']}, d.{c['status']} FROM {table} d WHERE d.{c['route']} = %s "
        f"AND d.{c['ordering_key']} = %s AND NOT (d.{c['status']} IN ({finished})) "
        f"ORDER BY d.{c['ordering_seq']}, d.{c['id']} LIMIT 1"
    )


@functools.cache
def _heads_sql() -> str:
    """Each key's head, for many keys in one statement (PostgreSQL), tagged with the key's position."""
    head = _head_sql().replace("= %s", "= k.route_id", 1).replace("= %s", "= k.key", 1)
    return (
        f"SELECT h.*, k.i FROM unnest(%s::bigint[], %s::varchar[]) WITH ORDINALITY AS k(route_id, key, i) "
        f"CROSS JOIN LATERAL ({head}) h"
    )


def may_run(delivery: Delivery) -> bool:
    """Whether a claimed keyed delivery is its key's head and may run now.

    If not, it becomes ``waiting`` (its claim undone: the attempt is not counted)
    and the caller drops its message. Call outside a transaction.
    """
    head = _head(delivery.route_id, delivery.ordering_key)
    if head is None or head[0] == delivery.pk:
        return True
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.RUNNING).update(
        status=Delivery.Status.WAITING, attempts=F("attempts") - 1
    )
    logger.debug("Delivery %s waits for delivery %s (key %r).", delivery.pk, head[0], delivery.ordering_key)
    release(route_id=delivery.route_id, key=delivery.ordering_key)  # the head may have finished meanwhile
    return False


def release(*, route_id: int, key: str) -> None:
    """Send the key's head if it is waiting (after a delivery of the key finished). Outside a transaction."""
    head = _head(route_id, key)
    if head is None or head[1] != Delivery.Status.WAITING:
        return
    if Delivery.objects.filter(pk=head[0], status=Delivery.Status.WAITING).update(
        status=Delivery.Status.PENDING, queued_at=None
    ):
        route = route_table.route(route_id)
        if route is not None:
            # Sent now rather than in the background: the relay would otherwise see an old pending row.
            send_deliveries([Outgoing.for_route(head[0], route)])


def prune_idle_keys(*, idle_seconds: float | None = None, force: bool = False) -> int:
    """Forget keys with nothing unfinished and no new delivery for a while; returns how many.

    Cheap to call often: it runs at most every PRUNE_EVERY_SECONDS per process unless ``force``.
    """
    global _last_prune
    if not force and time.monotonic() - _last_prune < PRUNE_EVERY_SECONDS:
        return 0
    _last_prune = time.monotonic()
    idle = eventhub_settings.ORDERING_KEY_IDLE_SECONDS if idle_seconds is None else idle_seconds
    unfinished = Delivery.objects.filter(route_id=OuterRef("route_id"), ordering_key=OuterRef("key")).exclude(
        status__in=FINISHED
    )
    # An emitter that takes a key meanwhile sets updated_at, which the delete checks again on the row.
    old = OrderingKey.objects.filter(updated_at__lt=timezone.now() - timedelta(seconds=idle))
    deleted, _ = old.exclude(Exists(unfinished)).delete()
    return deleted
