"""Several writes in one statement: all or nothing, Django's conversions and errors."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from eventhub.db import sqlbatch
from eventhub.models import Attempt, Delivery, Event
from tests.support import factories

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's data-modifying CTEs"),
]


def new_event(event_type, **fields) -> Event:
    return Event(event_type=event_type, type=event_type.name, source="/t", time=timezone.now(), **fields)


@pytest.mark.parametrize("prepare", [False, True])
def test_writes_in_one_statement_land_together_with_djangos_conversions(prepare):
    paid = factories.event_type("order.paid")
    route = factories.route(paid, "h")
    event = new_event(paid, data={"order_id": 1, "items": [1, 2]})
    delivery = Delivery(event=event, route=route, created_at=timezone.now())

    rows = sqlbatch.execute_together(
        [sqlbatch.insert_rows(Event, [event]), sqlbatch.insert_rows(Delivery, [delivery], returning=["id"])],
        prepare=prepare,
    )

    stored = Delivery.objects.select_related("event").get(pk=rows[0][0])
    assert stored.event.data == {"order_id": 1, "items": [1, 2]} and stored.event.created_at is not None
    assert stored.status == "pending" and stored.route_id == route.pk


@pytest.mark.parametrize("prepare", [False, True])
def test_a_failing_write_undoes_the_others_and_raises_djangos_error(prepare):
    paid = factories.event_type("order.paid")
    event = new_event(paid)
    orphan = Delivery(event_id=uuid.uuid4(), route=factories.route(paid, "h"), created_at=timezone.now())
    with pytest.raises(IntegrityError):
        sqlbatch.execute_together(
            [sqlbatch.insert_rows(Event, [event]), sqlbatch.insert_rows(Delivery, [orphan])], prepare=prepare
        )
    assert not Event.objects.filter(pk=event.pk).exists()


def test_insert_rows_and_insert_values_write_what_the_orm_reads_back():
    paid = factories.event_type("order.paid")
    event = Event.objects.create(event_type=paid, type=paid.name, source="/t", time=timezone.now())
    delivery = Delivery.objects.create(
        event=event, route=factories.route(paid, "h"), created_at=timezone.now()
    )
    now = timezone.now()
    attempt = Attempt(
        delivery=delivery, number=1, started_at=now, finished_at=now, duration_ms=1.5, succeeded=True
    )
    # Given by attname and field name alike, in an order of our own.
    names = ["error", "delivery", "number", "succeeded", "worker", "started_at", "finished_at", "duration_ms"]
    rows = [["Boom", delivery.pk, 2, False, "w/2", now, now, 3.0]]

    sqlbatch.execute_together(
        [sqlbatch.insert_rows(Attempt, [attempt]), sqlbatch.insert_values(Attempt, names, rows)],
        prepare=True,
    )

    stored = list(
        Attempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("number", "duration_ms", "worker", "succeeded", "error")
    )
    assert stored == [(1, 1.5, "", True, ""), (2, 3.0, "w/2", False, "Boom")]


def test_insert_values_refuses_rows_that_do_not_line_up():
    with pytest.raises(ValueError, match="rows of one value per name"):
        sqlbatch.insert_values(Attempt, ["number", "worker"], [[1, "w"], [2]])


def test_values_pass_through_json_unchanged_and_none_is_stored_as_the_orm_stores_it():
    paid = factories.event_type("order.paid")
    by_orm = Event.objects.create(
        event_type=paid, type=paid.name, source="/t", time=timezone.now(), data=None
    )
    text = 'quote " backslash \\ brace {} comma , unicode é ✓ newline\n'
    with_null = new_event(paid, subject=text, data=None)
    json_null_inside = new_event(paid, subject="", data={"a": None, "s": text, "n": 1.25, "big": 2**53})
    sqlbatch.execute_together([sqlbatch.insert_rows(Event, [with_null, json_null_inside])], prepare=True)

    stored = {e.pk: e for e in Event.objects.filter(pk__in=[with_null.pk, json_null_inside.pk])}
    assert stored[with_null.pk].subject == text and stored[with_null.pk].data is None
    assert stored[json_null_inside.pk].data == {"a": None, "s": text, "n": 1.25, "big": 2**53}
    assert stored[with_null.pk].time == with_null.time  # microseconds and time zone kept
    # SQL NULL or JSON null: whichever Django writes for None, the JSON path writes the same.
    null_ids = set(Event.objects.filter(data__isnull=True).values_list("pk", flat=True))
    assert (with_null.pk in null_ids) == (by_orm.pk in null_ids)
    assert json_null_inside.pk not in null_ids


def test_a_value_json_cannot_carry_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        sqlbatch.insert_values(Attempt, ["number", "duration_ms"], [[1, float("nan")]])
    with pytest.raises(TypeError, match="cannot pass a bytes"):
        sqlbatch.insert_values(Attempt, ["number", "worker"], [[1, b"w"]])


def test_prepared_statements_read_timestamps_as_djangos_queries_do():
    paid = factories.event_type("order.paid")
    event = Event.objects.create(event_type=paid, type=paid.name, source="/t", time=timezone.now())
    table = Event._meta.db_table
    [(fast,)], _ = sqlbatch.execute(f'SELECT "time" FROM {table} WHERE id = %s', [event.pk], prepare=True)
    [(plain,)], _ = sqlbatch.execute(f'SELECT "time" FROM {table} WHERE id = %s', [event.pk])
    by_orm = Event.objects.get(pk=event.pk).time
    assert fast == plain == by_orm == event.time
    assert fast.tzinfo is plain.tzinfo is by_orm.tzinfo


def test_prepared_statements_keep_working_when_django_reconnects():
    """Each thread keeps its cursor for prepared statements: a closed connection's cursor is not reused."""
    [(one,)], _ = sqlbatch.execute("SELECT %s::int", [1], prepare=True)
    first = connection.connection
    connection.close()  # as CONN_MAX_AGE or a failed health check does
    [(two,)], _ = sqlbatch.execute("SELECT %s::int", [2], prepare=True)
    assert (one, two) == (1, 2)
    assert connection.connection is not first and first.closed


def test_a_statement_without_rows_returns_none_and_its_row_count():
    paid = factories.event_type("order.paid")
    event = Event.objects.create(event_type=paid, type=paid.name, source="/t", time=timezone.now())
    table = Event._meta.db_table
    rows, count = sqlbatch.execute(
        f"UPDATE {table} SET subject = %s WHERE id = %s", ["s", event.pk], prepare=True
    )
    assert (rows, count) == ([], 1)
    assert Event.objects.get(pk=event.pk).subject == "s"


def test_a_prepared_statement_in_a_broken_transaction_is_refused_as_djangos_queries_are():
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            # An error leaving an inner block breaks the transaction: Django marks it for rollback.
            sqlbatch.execute("INSERT INTO eventhub_event (id) VALUES (NULL)", [], prepare=True)
        with pytest.raises(TransactionManagementError, match="An error occurred in the current transaction"):
            sqlbatch.execute("SELECT 1", [], prepare=True)
