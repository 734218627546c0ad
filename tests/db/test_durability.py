"""Relaxed commits apply to eventhub's own bookkeeping transactions only, never to the caller's."""

import pytest
from django.db import connection, transaction

from eventhub.db.durability import can_relax, relax_current_transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"),
]


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_an_outermost_transaction_is_relaxed_until_it_ends():
    with transaction.atomic():
        relax_current_transaction()
        assert synchronous_commit() == "off"
    assert synchronous_commit() == "on"


def test_a_callers_transaction_is_never_relaxed():
    with transaction.atomic(), transaction.atomic():
        relax_current_transaction()
        assert synchronous_commit() == "on"
    with transaction.atomic():
        assert not can_relax()
    assert can_relax()
