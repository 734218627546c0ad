"""The worker's usual claim in one round trip (PostgreSQL).

A delivery that is not running, succeeded or dead is marked running, its attempt
counted, and loaded with its event and route by one statement; the SQL is built
once per process from the models. Every other case (unknown, finished, or found
running after an interrupted run) is left to ``eventhub.delivery.claim``.
"""

import functools
from datetime import datetime

from django.db import connection

from eventhub import sqlbatch
from eventhub.durability import RELAXED_CONDITION, RELAXED_CTE
from eventhub.models import Delivery, Event, Route

UNCLAIMABLE = (Delivery.Status.RUNNING, Delivery.Status.SUCCEEDED, Delivery.Status.DEAD)


def claim_unstarted(delivery_id: int, *, worker: str, now: datetime) -> Delivery | None:
    """Claim the delivery if it is unstarted; returns it with ``event`` and ``route`` loaded, or None.

    Runs as its own relaxed transaction (see eventhub.durability): call it only where
    ``durability.can_relax()`` holds.
    """
    params = [Delivery.Status.RUNNING, now, worker, delivery_id, *UNCLAIMABLE]
    rows, _ = sqlbatch.execute(_claim_sql(), params, prepare=True)
    if not rows:
        return None
    row = rows[0]
    delivery, row = sqlbatch.instance_from_row(Delivery, row)
    event, row = sqlbatch.instance_from_row(Event, row)
    route, _ = sqlbatch.instance_from_row(Route, row)
    delivery.event, delivery.route = event, route
    return delivery


@functools.cache
def _claim_sql() -> str:
    qn = connection.ops.quote_name
    d = Delivery._meta

    def col(name: str) -> str:
        return qn(d.get_field(name).column)

    update = (
        f"UPDATE {qn(d.db_table)} SET {col('status')} = %s, {col('attempts')} = {col('attempts')} + 1, "
        f"{col('started_at')} = %s, {col('worker')} = %s "
        f"WHERE {col('id')} = %s AND {col('status')} NOT IN (%s, %s, %s){RELAXED_CONDITION} RETURNING *"
    )
    return (
        f"{RELAXED_CTE.rstrip()}, claimed AS ({update}) "
        f"SELECT {sqlbatch.columns(Delivery, 'c')}, {sqlbatch.columns(Event, 'e')}, "
        f"{sqlbatch.columns(Route, 'r')} FROM claimed c "
        f"JOIN {qn(Event._meta.db_table)} e ON e.{qn(Event._meta.pk.column)} = c.{col('event')} "
        f"JOIN {qn(Route._meta.db_table)} r ON r.{qn(Route._meta.pk.column)} = c.{col('route')}"
    )
