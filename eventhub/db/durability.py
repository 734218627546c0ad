"""Commits that need not wait for PostgreSQL's WAL flush.

Some of eventhub's own writes are bookkeeping that a later write makes durable
anyway, or that the outbox relay repairs: a delivery marked queued, a delivery
claimed by a worker. Their transactions can commit with ``synchronous_commit``
off: PostgreSQL then answers before the commit record reaches disk, and a crash
can lose only the last fraction of a second of such commits, never a later
synchronous one (the WAL is flushed in order). A worker or emitter thus waits
for one disk flush per delivery instead of several.

The caller's own transactions are never relaxed: an outbox write committed by
``emit`` is as durable as the caller's data.
"""

from django.db import DEFAULT_DB_ALIAS, connections

from eventhub.db import sqlbatch
from eventhub.db.sqlbatch import Statement

# Wrapped around a single UPDATE run outside a transaction (autocommit): set_config(..., true)
# lasts until that statement's own implicit transaction commits, which is all it should touch.
_RELAXED_CTE = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS ok) "
_RELAXED_CONDITION = " AND EXISTS (SELECT 1 FROM relaxed)"


def can_relax(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether a statement on ``using`` would run in its own transaction on PostgreSQL."""
    connection = connections[using]
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def relax_current_transaction(using: str = DEFAULT_DB_ALIAS) -> None:
    """Let the transaction just opened by the outermost ``atomic()`` commit without waiting for disk.

    Does nothing inside a nested block (the outer transaction is the caller's) or
    on databases other than PostgreSQL.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or len(connection.atomic_blocks) != 1:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def execute_relaxed_update(
    statement: Statement, *, prepare: bool = False, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Run one ``UPDATE ... WHERE ...`` as its own relaxed transaction (see can_relax); returns the rows."""
    sql, params = statement
    if not sql.startswith("UPDATE ") or " WHERE " not in sql or " RETURNING " in sql:
        raise ValueError("execute_relaxed_update takes one UPDATE ending in its WHERE clause")
    return sqlbatch.execute(_RELAXED_CTE + sql + _RELAXED_CONDITION, params, prepare=prepare, using=using)[1]
