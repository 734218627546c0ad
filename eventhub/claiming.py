"""The worker's usual claim in one round trip (PostgreSQL).

A delivery that is not running, succeeded or dead is marked running, its attempt
counted, and loaded with its event and route by one statement; the SQL is built
once per process from the models. Every other case (unknown, finished, or found
running after an interrupted run) is left to ``eventhub.delivery.claim``.
"""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, models

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
    delivery, row = _instance(Delivery, row)
    event, row = _instance(Event, row)
    route, _ = _instance(Route, row)
    delivery.event, delivery.route = event, route
    return delivery


@functools.cache
def _claim_sql() -> str:
    qn = connection.ops.quote_name
    d = Delivery._meta

    def col(name: str) -> str:
        return qn(d.get_field(name).column)

    def columns(model: type[models.Model], alias: str) -> str:
        return ", ".join(f"{alias}.{qn(f.column)}" for f in model._meta.concrete_fields)

    update = (
        f"UPDATE {qn(d.db_table)} SET {col('status')} = %s, {col('attempts')} = {col('attempts')} + 1, "
        f"{col('started_at')} = %s, {col('worker')} = %s "
        f"WHERE {col('id')} = %s AND {col('status')} NOT IN (%s, %s, %s){RELAXED_CONDITION} RETURNING *"
    )
    return (
        f"{RELAXED_CTE.rstrip()}, claimed AS ({update}) "
        f"SELECT {columns(Delivery, 'c')}, {columns(Event, 'e')}, {columns(Route, 'r')} FROM claimed c "
        f"JOIN {qn(Event._meta.db_table)} e ON e.{qn(Event._meta.pk.column)} = c.{col('event')} "
        f"JOIN {qn(Route._meta.db_table)} r ON r.{qn(Route._meta.pk.column)} = c.{col('route')}"
    )


def _instance(model: type[models.Model], row: Sequence[Any]) -> tuple[models.Model, Sequence[Any]]:
    """The model instance from the first columns of ``row`` (with Django's converters), and the rest."""
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, converters in _converters(model):
        for convert in converters:
            values[index] = convert(values[index], fields[index].cached_col, connection)
    return model.from_db(DEFAULT_DB_ALIAS, [f.attname for f in fields], values), row[len(fields) :]


@functools.cache
def _converters(model: type[models.Model]) -> list[tuple[int, list]]:
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        converters = connection.ops.get_db_converters(field.cached_col) + field.get_db_converters(connection)
        if converters:
            found.append((index, converters))
    return found
