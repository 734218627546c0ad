"""manage.py eventhub_seed: bulk history for the dashboard's benchmark."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from eventhub.models import Attempt, Delivery, DeliveryMinute, Event

pytestmark = pytest.mark.django_db


def test_seed_writes_deliveries_events_attempts_and_figures():
    out = StringIO()
    call_command("eventhub_seed", deliveries=401, days=0.5, batch=100, stdout=out)
    assert Delivery.objects.count() == 401
    assert Event.objects.count() == 201  # two routes per event type; the last event gets one
    statuses = set(Delivery.objects.values_list("status", flat=True))
    assert "succeeded" in statuses
    assert Attempt.objects.count() >= 401
    assert DeliveryMinute.objects.exists()
    assert "seeded 401/401 deliveries" in out.getvalue() and "Done: 401 deliveries" in out.getvalue()
    # Seeding again adds to the same routes, with new ids.
    call_command("eventhub_seed", deliveries=10, days=1, seed=2, stdout=StringIO())
    assert Delivery.objects.count() == 411


def test_seed_refuses_nonsense():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("eventhub_seed", deliveries=0, stdout=StringIO())


def planner_row_estimate(model) -> int | None:
    """What the planner believes the table holds, from its statistics; None when never analysed."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
            estimate = cursor.fetchone()[0]
            return None if estimate < 0 else estimate  # -1: never analysed (PostgreSQL 14+)
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if cursor.fetchone() is None:
            return None
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s AND idx IS NULL", [table])
        row = cursor.fetchone()
        if row is None:  # a table with indexes has one row per index, the first number its row count
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [table])
            row = cursor.fetchone()
        return None if row is None else int(row[0].split()[0])


def test_seed_analyses_what_it_wrote_and_reports_the_time():
    out = StringIO()
    call_command("eventhub_seed", deliveries=300, days=0.5, batch=100, stdout=out)
    assert planner_row_estimate(Delivery) == 300
    assert planner_row_estimate(Event) == 150
    assert planner_row_estimate(Attempt) == Attempt.objects.count()
    assert "ANALYZE" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_seeding_again_with_the_same_seed_says_to_pick_another():
    call_command("eventhub_seed", deliveries=20, days=1, stdout=StringIO())
    with pytest.raises(CommandError, match="The data of --seed 1 is already in the database"):
        call_command("eventhub_seed", deliveries=20, days=1, stdout=StringIO())
