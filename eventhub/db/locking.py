"""Rows that one of several processes takes: SKIP LOCKED on PostgreSQL, the write lock on SQLite.

Relays, rescuers and pruners may run on every host at once; each batch they take
is theirs alone until their transaction ends. Work that only one process may do at a
time (the pruner) takes an advisory lock, and skips its turn when another holds it.
"""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, models


def lockable(queryset: models.QuerySet) -> models.QuerySet:
    """``queryset`` locked for this transaction, skipping rows another one holds (where the database can)."""
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def take_write_lock_if_needed(model: type[models.Model]) -> None:
    """Without SKIP LOCKED (SQLite), take the database's write lock first, so takers run one at a time.

    A write as the transaction's first statement makes SQLite take its write lock
    now (waiting for another taker's to be released) rather than after reading
    rows that taker is about to use. Call it first thing inside ``atomic()``; ``model``
    must have an integer primary key.
    """
    if connection.features.has_select_for_update_skip_locked:
        return
    # Matches no row, but an UPDATE makes SQLite take the lock all the same.
    model._default_manager.filter(pk=-1).update(**{model._meta.pk.name: -1})


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def try_advisory_lock(name: str) -> Iterator[bool]:
    """Yield True when this process now holds the lock ``name`` (until the block ends), False when
    another one has it.

    On PostgreSQL it is a session-level advisory lock (``pg_try_advisory_lock``): one holder
    across every host, never waited for, and released by the server if the holder's
    connection dies. Elsewhere (SQLite: one host) it is a lock of this process only.
    """
    with _local_locks_guard:
        local = _local_locks.setdefault(name, threading.Lock())
    if not local.acquire(blocking=False):
        yield False
        return
    try:
        if connection.vendor != "postgresql":
            yield True
            return
        key = advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = bool(cursor.fetchone()[0])
        try:
            yield held
        finally:
            if held and connection.connection is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        local.release()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
