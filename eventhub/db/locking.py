"""Rows that one of several processes takes: SKIP LOCKED on PostgreSQL, the write lock on SQLite.

Relays, rescuers and pruners may run on every host at once; each batch they take
is theirs alone until their transaction ends.
"""

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
