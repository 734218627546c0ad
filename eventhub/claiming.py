"""The worker's usual claim, many threads' claims in one statement (PostgreSQL).

A delivery that is not running, succeeded or dead is marked running, its attempt
counted, and loaded with its event; its route comes from eventhub.route_table. Concurrent claims of a worker
process's threads are combined (see eventhub.combining): one statement and one
relaxed commit claims them all. The SQL is built once per process from the
models. Every other case (unknown, finished, or found running after an
interrupted run) is left to ``eventhub.delivery.claim``.
"""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection

from eventhub import route_table, sqlbatch
from eventhub.combining import Combiner
from eventhub.durability import RELAXED_CONDITION, RELAXED_CTE
from eventhub.models import Delivery, Event

UNCLAIMABLE = (Delivery.Status.RUNNING, Delivery.Status.SUCCEEDED, Delivery.Status.DEAD)


class ClaimRequest(NamedTuple):
    delivery_id: int
    worker: str
    now: datetime


def claim_unstarted(delivery_id: int, *, worker: str, now: datetime) -> Delivery | None:
    """Claim the delivery if it is unstarted; returns it with ``event`` and ``route`` loaded, or None.

    Runs as its own relaxed transaction, possibly together with other threads'
    claims (see eventhub.durability): call it only where ``durability.can_relax()`` holds.
    """
    return _claims.submit(ClaimRequest(delivery_id, worker, now))


def claim_batch(requests: Sequence[ClaimRequest]) -> list[Delivery | None]:
    """Claim every unstarted delivery among ``requests`` in one statement; one result per request.

    A delivery asked for twice in one batch (a redelivered message racing its
    original) is claimed for the first request only.
    """
    # Rows are locked in id order, as every multi-row update of deliveries does: no deadlocks.
    first = sorted({r.delivery_id: r for r in reversed(requests)}.values())
    params = [
        Delivery.Status.RUNNING,
        [r.delivery_id for r in first],
        [r.worker for r in first],
        [r.now for r in first],
        *UNCLAIMABLE,
    ]
    rows, _ = sqlbatch.execute(_claim_sql(), params, prepare=True)
    claimed: dict[int, Delivery] = {}
    for row in rows:
        delivery, row = sqlbatch.instance_from_row(Delivery, row)
        delivery.event, _ = sqlbatch.instance_from_row(Event, row)
        delivery.route = route_table.route(delivery.route_id)
        claimed[delivery.pk] = delivery
    # pop: a second request for the same delivery gets None.
    return [claimed.pop(r.delivery_id, None) for r in requests]


_claims: Combiner[ClaimRequest, Delivery | None] = Combiner(claim_batch)


@functools.cache
def _claim_sql() -> str:
    qn = connection.ops.quote_name
    d = Delivery._meta

    def col(name: str) -> str:
        return qn(d.get_field(name).column)

    worker_type = d.get_field("worker").db_type(connection)
    update = (
        f"UPDATE {qn(d.db_table)} d SET {col('status')} = %s, {col('attempts')} = d.{col('attempts')} + 1, "
        f"{col('started_at')} = w.started_at, {col('worker')} = w.worker "
        f"FROM unnest(%s::bigint[], %s::{worker_type}[], %s::timestamptz[]) AS w(id, worker, started_at) "
        f"WHERE d.{col('id')} = w.id AND d.{col('status')} NOT IN (%s, %s, %s){RELAXED_CONDITION} "
        "RETURNING d.*"
    )
    event = Event._meta
    return (
        f"{RELAXED_CTE.rstrip()}, claimed AS ({update}) "
        f"SELECT {sqlbatch.columns(Delivery, 'c')}, {sqlbatch.columns(Event, 'e')} FROM claimed c "
        f"JOIN {qn(event.db_table)} e ON e.{qn(event.pk.column)} = c.{col('event')}"
    )
