"""Several writes in one round trip: PostgreSQL data-modifying CTEs over array parameters.

Multi-row ``INSERT`` statements take one array per column and ``unnest`` them,
so their SQL does not depend on the number of rows and is prepared once; values
go through Django's own field conversion (``pre_save``, ``get_db_prep_save``), or
come ready for the database (``insert_columns``), and table and column names come
from the models. They are joined into one statement:
``WITH w0 AS (<write>), w1 AS (<write>) <last write>``. One statement is one
implicit transaction, so the writes are all-or-nothing without BEGIN/COMMIT
round trips. Foreign keys between them are checked at the end of the statement.
"""

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, models

Statement = tuple[str, tuple[Any, ...]]
NEVER_BY_COUNT = 2**31 - 1


def supported(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database runs data-modifying CTEs (PostgreSQL)."""
    return connections[using].vendor == "postgresql"


def insert_rows(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    returning: Sequence[str] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> Statement:
    """INSERT ``objs`` with one array parameter per column (PostgreSQL ``unnest``).

    The SQL is the same for any number of rows, so it is prepared once however
    many rows each call writes. ``returning`` names columns to return; match the
    returned rows to ``objs`` by their values, not by their order.
    """
    connection = connections[using]
    fields = _insertable_fields(model)
    columns = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs] for f in fields]
    return insert_columns(model, [f.name for f in fields], columns, returning=returning, using=using)


def insert_columns(
    model: type[models.Model],
    names: Sequence[str],
    columns: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> Statement:
    """Like insert_rows, from values given column by column: one list per field in ``names``.

    The values must be ready for the database (as ``get_db_prep_save`` returns
    them); fields left out take their database default, or NULL.
    """
    if len(names) != len(columns) or len({len(c) for c in columns}) > 1:
        raise ValueError("insert_columns takes one list of values per name, all of the same length")
    return _insert_rows_sql(model, tuple(names), tuple(returning), using), tuple(columns)


@functools.cache
def _insert_rows_sql(
    model: type[models.Model], names: tuple[str, ...], returning: tuple[str, ...], using: str
) -> str:
    connection = connections[using]
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(qn(f.column) for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) SELECT * FROM unnest({arrays})"
    if returning:
        sql += " RETURNING " + ", ".join(qn(model._meta.get_field(name).column) for name in returning)
    return sql


def _insertable_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]


def execute_together(
    statements: Iterable[Statement], *, prepare: bool = False, using: str = DEFAULT_DB_ALIAS
) -> list[tuple]:
    """Run the writes as one statement; returns the rows the last one returns (if any)."""
    *firsts, (last_sql, last_params) = list(statements)
    ctes = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(firsts))
    sql = f"WITH {ctes} {last_sql}" if firsts else last_sql
    params = tuple(p for _, ps in firsts for p in ps) + last_params
    return execute(sql, params, prepare=prepare, using=using)[0]


def execute(
    sql: str, params: Sequence[Any], *, prepare: bool = False, using: str = DEFAULT_DB_ALIAS
) -> tuple[list[tuple], int]:
    """Run one statement; returns its rows and row count.

    With ``prepare`` (for the hot paths' fixed statements) PostgreSQL parses and plans
    it once per connection: it is bound and run server-side as a prepared statement,
    which Django's own cursors don't do. Database errors are Django's, as usual.
    """
    connection = connections[using]
    if not prepare or connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return (cursor.fetchall() if cursor.description else []), cursor.rowcount
    with connection.cursor() as wrapper:  # Django's checks: connected, right thread, usable
        raw = wrapper.cursor.connection
        if raw.prepare_threshold is None:
            # Django turns preparing off (for poolers); explicit prepare=True needs it on. A threshold
            # no query reaches keeps Django's own, client-side bound queries unprepared.
            raw.prepare_threshold = NEVER_BY_COUNT
            # Plan once: left to choose, PostgreSQL re-plans statements with array parameters on
            # every run (their custom plans look cheaper than the generic one), which costs more
            # than running them. Only prepared statements, thus only these, are affected.
            raw.execute("SET plan_cache_mode = force_generic_plan")
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return (cursor.fetchall() if cursor.description else []), cursor.rowcount


def columns(model: type[models.Model], alias: str, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """Every concrete column of ``model`` qualified by ``alias``, in field order (for instance_from_row)."""
    qn = connections[using].ops.quote_name
    return ", ".join(f"{alias}.{qn(f.column)}" for f in model._meta.concrete_fields)


def instance_from_row(
    model: type[models.Model], row: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS
) -> tuple[models.Model, Sequence[Any]]:
    """The instance built from the first columns of ``row`` (as ``columns`` lists them), and the rest."""
    connection = connections[using]
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, converters in _converters(model, using):
        for convert in converters:
            values[index] = convert(values[index], fields[index].cached_col, connection)
    return model.from_db(using, [f.attname for f in fields], values), row[len(fields) :]


@functools.cache
def _converters(model: type[models.Model], using: str) -> list[tuple[int, list]]:
    connection = connections[using]
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        converters = connection.ops.get_db_converters(field.cached_col) + field.get_db_converters(connection)
        if converters:
            found.append((index, converters))
    return found
