"""Bulk demo and benchmark data: many events, deliveries and attempts, written fast.

PostgreSQL gets COPY (about a million deliveries a minute on a laptop); other
databases get large ``bulk_create`` batches. Nothing is sent to the broker: the
rows look like history that workers already handled.
"""

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models, transaction
from django.utils import timezone

from eventhub.dashboard import stats
from eventhub.models import Attempt, Delivery, Event, EventType, Route

SEED_HANDLER = "eventhub.seed.noop"
ERRORS = (
    "ConnectionError: downstream refused the connection",
    "HTTPError: 503 Service Unavailable from https://billing.example/hooks",
    "ValueError: customer 1234 has no billing address",
    "TimeLimitExceeded: the handler ran longer than 60000 ms",
)


@dataclass(frozen=True)
class SeedPlan:
    """How much to write and how it is spread over time."""

    deliveries: int
    types: int = 4
    routes_per_type: int = 2
    days: float = 30.0
    failure_rate: float = 0.03
    retrying_rate: float = 0.01
    attempts: bool = True
    batch: int = 50_000
    seed: int = 1


@dataclass(frozen=True)
class SeedResult:
    """What a seed wrote and how long each step took (seconds)."""

    written: int
    write_seconds: float
    analyse_seconds: float
    figures_seconds: float


@dataclass
class Batch:
    """One batch of rows ready to write."""

    events: list[Event]
    deliveries: list[Delivery]
    attempts: list[Attempt]


def seed(plan: SeedPlan, *, progress: Callable[[int, int], None] | None = None) -> SeedResult:
    """Write ``plan.deliveries`` deliveries (and their events and attempts), analyse them, refresh figures."""
    started = time.monotonic()
    rng = random.Random(plan.seed)
    routes = seed_routes(plan)
    next_id = (Delivery.objects.aggregate(m=models.Max("pk"))["m"] or 0) + 1
    write = _copy_batch if connection.vendor == "postgresql" else _bulk_create_batch
    written = 0
    for batch in _batches(plan, routes, rng, next_id):
        with transaction.atomic():
            write(batch)
        written += len(batch.deliveries)
        if progress:
            progress(written, plan.deliveries)
    _reset_sequence(Delivery)
    wrote = time.monotonic()
    # Statistics for what was just written: the planner picks the dashboard's indexes from them, and a
    # server without autovacuum (or before it gets round to it) would plan these tables as tiny.
    analyse([Event, Delivery, Attempt])
    analysed = time.monotonic()
    # The dashboard's per-minute figures for the last day, so its first page load is not the one paying.
    stats.refresh(force=True)
    return SeedResult(written, wrote - started, analysed - wrote, time.monotonic() - analysed)


def analyse(tables: list[type[models.Model]]) -> None:
    """Refresh the planner's statistics of these models' tables (ANALYZE; PostgreSQL and SQLite).

    On PostgreSQL, outside a transaction, VACUUM (ANALYZE): it also marks the pages all-visible, as
    autovacuum would in a while, so counts over an index (/metrics' unfinished deliveries) read the
    index alone instead of fetching millions of fresh rows from the table.
    """
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
    with connection.cursor() as cursor:
        for model in tables:
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")


def seed_routes(plan: SeedPlan) -> list[list[Route]]:
    """The seed's event types and their routes (made once, reused on later runs)."""
    by_type = []
    for t in range(plan.types):
        event_type, _ = EventType.objects.get_or_create(name=f"seed.type_{t}")
        routes = []
        for r in range(plan.routes_per_type):
            route, _ = Route.objects.get_or_create(
                name=f"seed-{t}-{r}",
                defaults={"event_type": event_type, "target": SEED_HANDLER, "queue": f"seed-{r}"},
            )
            routes.append(route)
        by_type.append(routes)
    return by_type


def _batches(plan: SeedPlan, routes: list[list[Route]], rng: random.Random, next_id: int) -> Iterator[Batch]:
    now = timezone.now()
    span = timedelta(days=plan.days).total_seconds()
    per_event = plan.routes_per_type
    total_events = -(-plan.deliveries // per_event)
    made = 0
    for start in range(0, total_events, max(plan.batch // per_event, 1)):
        count = min(max(plan.batch // per_event, 1), total_events - start)
        batch = Batch([], [], [])
        for i in range(start, start + count):
            # Evenly spread, oldest first, so ids grow with time as in real use.
            created = now - timedelta(seconds=span * (1 - (i + rng.random()) / total_events))
            type_index = rng.randrange(len(routes))
            event = _event(type_index, created, i, rng)
            batch.events.append(event)
            for route in routes[type_index][: plan.deliveries - made]:
                _add_delivery(batch, plan, event, route, next_id + made, rng)
                made += 1
        yield batch


def _event(type_index: int, created: datetime, i: int, rng: random.Random) -> Event:
    return Event(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        event_type_id=None,
        type=f"seed.type_{type_index}",
        source="/eventhub/seed",
        subject=f"order/{i}",
        time=created - timedelta(milliseconds=rng.randint(0, 5)),
        data={"order_id": i, "amount": rng.randint(1, 50_000)},
        created_at=created,
    )


def _add_delivery(batch: Batch, plan: SeedPlan, event: Event, route: Route, pk: int, rng) -> None:
    roll = rng.random()
    status, attempts = Delivery.Status.SUCCEEDED, 1
    if roll < plan.failure_rate:
        status, attempts = Delivery.Status.DEAD, route.max_attempts
    elif roll < plan.failure_rate + plan.retrying_rate:
        status, attempts = Delivery.Status.RETRYING, 2
    event.event_type_id = route.event_type_id
    duration = rng.lognormvariate(3.0, 1.0)  # ms; median ~20 ms with a long tail
    finished = event.created_at + timedelta(milliseconds=rng.lognormvariate(4.0, 1.0) + duration)
    error = ERRORS[pk % len(ERRORS)] if status != Delivery.Status.SUCCEEDED else ""
    delivery = Delivery(
        id=pk,
        event_id=event.id,
        route_id=route.pk,
        status=status,
        attempts=attempts,
        last_error=error,
        created_at=event.created_at,
        queued_at=event.created_at,
        started_at=finished - timedelta(milliseconds=duration),
        finished_at=finished,
        duration_ms=duration,
        worker="seed:0/Thread-1",
    )
    batch.deliveries.append(delivery)
    if plan.attempts:
        for n in range(1, attempts + 1):
            ok = status == Delivery.Status.SUCCEEDED and n == attempts
            batch.attempts.append(
                Attempt(
                    delivery_id=pk,
                    number=n,
                    started_at=delivery.started_at,
                    finished_at=finished,
                    duration_ms=duration,
                    worker=delivery.worker,
                    succeeded=ok,
                    error="" if ok else error,
                )
            )


def _bulk_create_batch(batch: Batch) -> None:
    Event.objects.bulk_create(batch.events, batch_size=2_000)
    Delivery.objects.bulk_create(batch.deliveries, batch_size=2_000)
    Attempt.objects.bulk_create(batch.attempts, batch_size=2_000)


def _copy_batch(batch: Batch) -> None:
    for model, rows in ((Event, batch.events), (Delivery, batch.deliveries), (Attempt, batch.attempts)):
        if rows:
            _copy_rows(model, rows)


def _copy_rows(model: type[models.Model], rows: list[models.Model]) -> None:
    # Every concrete column, so fields other modules add to the models are filled with their defaults.
    # Rows without a primary key (attempts) take the next ids from the table's own sequence.
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and rows[0].pk is None)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    # The raw cursor's COPY raises psycopg's errors: Django's wrapper makes them Django's (IntegrityError).
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([_value(row, f, json_fields) for f in fields])


def _value(row: models.Model, field: models.Field, json_fields: set[str]):
    value = getattr(row, field.attname)
    if field.attname in json_fields:
        from psycopg.types.json import Jsonb

        return None if value is None else Jsonb(value)
    return value


def _reset_sequence(model: type[models.Model]) -> None:
    # Rows were written with explicit ids; move the id sequence past them.
    statements = connection.ops.sequence_reset_sql(no_style(), [model])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def no_style():
    """Django's plain SQL style, for sequence_reset_sql."""
    from django.core.management.color import no_style as plain

    return plain()
