"""Several writes in one round trip: PostgreSQL data-modifying CTEs over a JSON parameter.

Multi-row ``INSERT`` statements take their rows as one JSON text parameter (an
array of rows, each an array of values in PostgreSQL's text input form) and
select typed columns out of it, so their SQL does not depend on the number of
rows and is prepared once. One JSON text is cheap to pass: psycopg adapts a
string in C, where an array parameter per column cost it about 8 us of Python
each, more than the database spent on the rows. Values go through Django's own
field conversion (``pre_save``, ``get_db_prep_save``), or come ready for the
database (``insert_values``), and table and column names come from the models.
They are joined into one statement: ``WITH w0 AS (<write>), w1 AS (<write>) <last
write>``. One statement is one implicit transaction, so the writes are
all-or-nothing without BEGIN/COMMIT round trips. Foreign keys between them are
checked at the end of the statement.
"""

import datetime
import decimal
import functools
import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from psycopg.types.json import Json, Jsonb

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
    """INSERT ``objs`` from one JSON parameter holding their rows (see :func:`rows_param`).

    The SQL is the same for any number of rows, so it is prepared once however
    many rows each call writes. ``returning`` names columns to return; match the
    returned rows to ``objs`` by their values, not by their order.
    """
    connection = connections[using]
    fields = _insertable_fields(model)
    rows = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs]
    return insert_values(model, [f.name for f in fields], rows, returning=returning, using=using)


def insert_values(
    model: type[models.Model],
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    returning: Sequence[str] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> Statement:
    """Like insert_rows, from plain rows: one value per field in ``names``, in that order.

    The values must be ready for the database (as ``get_db_prep_save`` returns
    them); fields left out take their database default, or NULL.
    """
    if any(len(row) != len(names) for row in rows):
        raise ValueError("insert_values takes rows of one value per name")
    return _insert_rows_sql(model, tuple(names), tuple(returning), using), (rows_param(rows),)


@functools.cache
def _insert_rows_sql(
    model: type[models.Model], names: tuple[str, ...], returning: tuple[str, ...], using: str
) -> str:
    connection = connections[using]
    qn = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(qn(f.column) for f in fields)
    values = rows_from_json([f.db_type(connection) for f in fields])
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) {values}"
    if returning:
        sql += " RETURNING " + ", ".join(qn(model._meta.get_field(name).column) for name in returning)
    return sql


def rows_from_json(types: Sequence[str], names: Sequence[str] | None = None) -> str:
    """``SELECT`` of typed columns from one JSON parameter (:func:`rows_param`): column ``i``
    is value ``i`` of each row cast to ``types[i]``, named ``names[i]`` (``c0``, ``c1``... if not given).

    jsonb, not json: it is parsed once, where json's ``->>`` scans the row's text again
    for every column. The rows come out in their order, through an array that ``unnest``
    reads: the planner counts on about 10 rows from it, as from any array parameter,
    where it assumes 100 from ``jsonb_array_elements`` itself, and with 100 it joined the
    worker's update to a hash of the whole deliveries table (a sequential scan per batch).
    """
    names = names or [f"c{i}" for i in range(len(types))]
    columns = ", ".join(f"(r.v->>{i})::{t} AS {n}" for i, (t, n) in enumerate(zip(types, names, strict=True)))
    rows = "ARRAY(SELECT e.v FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY e.n)"
    return f"SELECT {columns} FROM unnest({rows}) AS r(v)"


def rows_param(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON text for :func:`rows_from_json`: each value as PostgreSQL reads it from text.

    Strings, numbers, booleans and None (NULL) are JSON's own; datetimes and dates
    go as ISO 8601, UUIDs and decimals as text, and a JSON column's value (Django
    gives a psycopg ``Jsonb``) as its JSON text, which the cast to jsonb parses: a
    JSON ``null`` stored there stays distinct from SQL NULL, as with any other write.
    """
    return _ENCODER.encode(rows if isinstance(rows, list | tuple) else list(rows))


def _text_form(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, Json | Jsonb):
        text = (value.dumps or json.dumps)(value.obj)
        return text.decode() if isinstance(text, bytes) else text
    raise TypeError(f"sqlbatch cannot pass a {type(value).__name__} as a column value")


# NaN and infinities are refused: PostgreSQL's JSON has no such numbers.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_text_form)


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
    raw = _checked_connection(connection)
    if raw.prepare_threshold is None:
        # Django turns preparing off (for poolers); explicit prepare=True needs it on. A threshold
        # no query reaches keeps Django's own, client-side bound queries unprepared.
        raw.prepare_threshold = NEVER_BY_COUNT
        # Plan once: left to choose, PostgreSQL re-plans statements with array or JSON parameters on
        # every run (their custom plans look cheaper than the generic one), which costs more
        # than running them. Only prepared statements, thus only these, are affected.
        raw.execute("SET plan_cache_mode = force_generic_plan")
    fast_timestamps = settings.USE_TZ and raw.info.timezone == connection.timezone
    cursor = _kept_cursor(using, raw, fast_timestamps=fast_timestamps)
    with connection.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        # pgresult, not description: description builds a Column object per column on every call.
        result = cursor.pgresult
        return (cursor.fetchall() if result is not None and result.nfields else []), cursor.rowcount


# Each thread's kept cursors for prepared statements, by database alias: (driver connection, cursors).
_kept = threading.local()


def _kept_cursor(using: str, raw: psycopg.Connection, *, fast_timestamps: bool) -> psycopg.Cursor:
    """This thread's kept cursor on ``raw``: a new cursor looked up the loader of every column of
    every result afresh (a claim returns about forty), where a kept one finds them cached. It
    holds the last result it fetched until the next statement: one statement's rows per thread.

    ``fast_timestamps``: Django's timestamptz loader parses in Python (5 us a value, where
    psycopg's own takes 1 us), and a claim reads seven timestamps a row. Both give the same
    aware datetime when the session's time zone is Django's, as Django makes it.
    """
    by_alias = getattr(_kept, "by_alias", None)
    if by_alias is None:
        by_alias = _kept.by_alias = {}
    kept = by_alias.get(using)
    if kept is None or kept[0] is not raw:  # a new connection (Django reconnected): new cursors
        kept = by_alias[using] = (raw, {})
    cursor = kept[1].get(fast_timestamps)
    if cursor is None or cursor.closed:
        cursor = kept[1][fast_timestamps] = psycopg.Cursor(raw)
        if fast_timestamps:
            cursor.adapters.register_loader("timestamptz", _TIMESTAMPTZ_LOADER)
    return cursor


def _checked_connection(connection) -> psycopg.Connection:
    """The open psycopg connection, after the checks Django makes before it hands out a cursor
    (connected, healthy, this thread's, no broken transaction), without making the cursor: a
    Django cursor and the driver's cursor under it cost more than a small statement's own run."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    return connection.connection


_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.postgres.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


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
