"""The pruner: deletes finished work older than its retention, in small batches, one pruner at a time.

What goes (docs/retention.md):

- succeeded and dead deliveries (only those two statuses: a whitelist) created longer
  ago than their event type's retention, with their attempts and their links to replay
  records; the replay record itself stays (it is the audit of who replayed what);
- an event, in the same transaction as its last delivery; events that never had a
  delivery, once older than their type's retention (swept by event time, each slice once);
- hook failures and test deliveries older than their retention;
- the dashboard's hourly rollups older than theirs (minute rows are the dashboard's own
  short-lived rows, see eventhub/dashboard/stats.py);
- old prune-run records beyond the last KEEP_RUNS.

Each batch is its own short transaction that locks only the rows it deletes, skipping
rows another transaction holds (SKIP LOCKED), so emit, workers and replays never wait
on the pruner. Deliveries are read oldest first through the (status, created_at) index
(or (route, status, created_at) when event types override the retention), so each batch
starts where the last one ended.
"""

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import durability, lockable, take_write_lock_if_needed, try_advisory_lock
from eventhub.models import (
    Attempt,
    Delivery,
    DeliveryMinute,
    Event,
    EventType,
    HookFailure,
    PruneRun,
    Replay,
    TrialDelivery,
)
from eventhub.retention.policy import Retention, check_routes, check_settings, retention_of

logger = logging.getLogger(__name__)

LOCK_NAME = "eventhub.retention.prune"
# The only statuses ever deleted: finished ones. Anything else (pending, queued, running,
# retrying, waiting, held, and any status added later) is kept.
PRUNABLE = {Delivery.Status.SUCCEEDED: "succeeded", Delivery.Status.DEAD: "dead"}
KINDS = (
    "deliveries_succeeded",
    "deliveries_dead",
    "attempts",
    "events",
    "hook_failures",
    "trials",
    "rollups",
)
KEEP_RUNS = 1_000

Progress = Callable[[str, int], None]


@dataclass
class PruneReport:
    """What a run deleted (or, dry, would delete), by kind; ``skipped`` when another pruner held the lock."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    dry_run: bool = False
    skipped: bool = False
    complete: bool = True
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line: each kind and its count."""
        return ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in self.counts.items())


def prune(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> PruneReport:
    """Delete (or with ``dry_run`` count) everything past its retention; see the module docstring.

    Refuses (RetentionTooShort, ImproperlyConfigured) when a retention is too short. Returns a
    skipped report at once when another pruner, on any host, is running. ``progress`` is called
    after each batch with the kind and the running count of that kind; ``stop`` ends the run
    between batches.
    """
    check_settings()
    check_routes()
    size = batch_size or eventhub_settings.PRUNE_BATCH_SIZE
    now = now or timezone.now()
    stop = stop or threading.Event()
    with try_advisory_lock(LOCK_NAME) as held:
        if not held:
            logger.info("Prune skipped: another pruner is running.")
            return PruneReport(dry_run=dry_run, skipped=True)
        started = time.monotonic()
        run = _Run(now=now, size=size, dry_run=dry_run, progress=progress, stop=stop)
        try:
            run.all()
        finally:
            run.report.seconds = time.monotonic() - started
            run.report.complete = not stop.is_set() and run.finished
            if not dry_run:
                _record(run.report, started_at=now, swept_to=now if run.swept else None)
    report = run.report
    verb = "Would prune" if dry_run else "Pruned"
    logger.info(
        "%s %s rows in %.1fs: %s (retention: succeeded %sd, dead %sd, hook failures %sd, trials %sd, "
        "rollups %sd).",
        verb,
        f"{report.total:,}",
        report.seconds,
        report.summary(),
        eventhub_settings.RETENTION_SUCCEEDED_DAYS,
        eventhub_settings.RETENTION_DEAD_DAYS,
        eventhub_settings.RETENTION_HOOK_FAILURES_DAYS,
        eventhub_settings.RETENTION_TRIALS_DAYS,
        eventhub_settings.RETENTION_ROLLUP_DAYS,
    )
    return report


class _Run:
    """One run's state: the settings it read, its counts, and whether it got to the end."""

    def __init__(
        self, *, now: datetime, size: int, dry_run: bool, progress: Progress | None, stop: threading.Event
    ) -> None:
        self.now, self.size, self.dry_run, self.stop = now, size, dry_run, stop
        self.progress = progress or (lambda kind, n: None)
        self.report = PruneReport(dry_run=dry_run)
        self.finished = False
        self.swept = False

    def all(self) -> None:
        types = list(EventType.objects.prefetch_related("routes"))
        self.deliveries(types)
        self.sweep_events(types)
        days = eventhub_settings
        failures = HookFailure.objects.filter(created_at__lt=self._ago(days.RETENTION_HOOK_FAILURES_DAYS))
        self.simple("hook_failures", failures, "created_at")
        trials = TrialDelivery.objects.filter(created_at__lt=self._ago(days.RETENTION_TRIALS_DAYS))
        self.simple("trials", trials, "created_at")
        rollups = DeliveryMinute.objects.filter(span=60, minute__lt=self._ago(days.RETENTION_ROLLUP_DAYS))
        self.simple("rollups", rollups, "minute")
        if not self.dry_run:
            newest = PruneRun.objects.order_by("-pk").values_list("pk", flat=True).first()
            if newest:
                PruneRun.objects.filter(pk__lte=newest - KEEP_RUNS).delete()
        self.finished = not self.stop.is_set()

    def _ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    def _add(self, kind: str, n: int) -> None:
        self.report.counts[kind] += n
        if n:
            self.progress(kind, self.report.counts[kind])

    # --- deliveries, their attempts and events -------------------------------------------------

    def deliveries(self, types: list[EventType]) -> None:
        for status, route_ids, cutoff in self._delivery_groups(types):
            old = Delivery.objects.filter(status=status, created_at__lt=cutoff)
            if route_ids is not None:
                old = old.filter(route_id__in=route_ids)
            if self.dry_run:
                self._count_deliveries(old, status)
            else:
                self._delete_deliveries(old, status)
        if self.dry_run:
            self._add("events", self._events_left_without_deliveries(types))

    def _delivery_groups(self, types: list[EventType]) -> list[tuple[str, list[int] | None, datetime]]:
        """(status, route ids or None for every route, cutoff): one group per status and retention.

        Without per-type overrides there is one group per status, read through the (status,
        created_at) index, oldest first, so an event's deliveries through its several routes go
        in the same batch as the event. With overrides, each route is read on its own through
        the (route, status, created_at) index, so no batch walks past rows another retention keeps.
        """
        groups = []
        for status in PRUNABLE:
            days = {
                route.pk: _days(retention_of(event_type), status)
                for event_type in types
                for route in event_type.routes.all()
            }
            if len(set(days.values())) == 1:
                groups.append((status, None, self.now - next(iter(days.values()))))
            else:
                groups += [(status, [route_id], self.now - kept) for route_id, kept in days.items()]
        return groups

    def _count_deliveries(self, old: QuerySet, status: str) -> None:
        self._add(f"deliveries_{PRUNABLE[status]}", old.count())
        self._add("attempts", Attempt.objects.filter(delivery__in=old.values("pk")).count())

    def _delete_deliveries(self, old: QuerySet, status: str) -> None:
        batch = old.order_by("created_at").values_list("pk", "event_id")
        while not self.stop.is_set():
            with transaction.atomic():
                # A batch lost in a crash is deleted again by the next run: no need to wait for the disk.
                durability.relax_current_transaction()
                take_write_lock_if_needed(Delivery)
                rows = list(lockable(batch)[: self.size])
                if not rows:
                    return
                ids = [pk for pk, _ in rows]
                attempts = _delete_in(Attempt, "delivery", ids)
                _delete_in(Replay.deliveries.through, "delivery", ids)
                deleted = _delete_in(Delivery, "id", ids)
                events = _delete_events_without_deliveries({event_id for _, event_id in rows})
            self._add(f"deliveries_{PRUNABLE[status]}", deleted)
            self._add("attempts", attempts)
            self._add("events", events)
            if len(rows) < self.size:
                return

    def _events_left_without_deliveries(self, types: list[EventType]) -> int:
        """Dry run: events all of whose deliveries would go."""
        going = Q(pk__in=[])
        for event_type in types:
            retention = retention_of(event_type)
            for status in PRUNABLE:
                going |= Q(
                    route__event_type_id=event_type.pk,
                    status=status,
                    created_at__lt=self.now - _days(retention, status),
                )
        deliveries = Delivery.objects.filter(event_id=OuterRef("pk"))
        return (
            Event.objects.filter(Exists(deliveries.filter(going)))
            .exclude(Exists(deliveries.exclude(going)))
            .count()
        )

    def sweep_events(self, types: list[EventType]) -> None:
        """Events that never had a delivery (no route matched), older than their type's retention.

        Each run sweeps the slice of event time that became old enough since the last complete
        run (by the (type, time) index), so no event is read twice.
        """
        last = PruneRun.objects.filter(complete=True, swept_to__isnull=False).order_by("-pk").first()
        for event_type in types:
            shortest = retention_of(event_type).shortest
            window = Q(type=event_type.name, time__lt=self.now - shortest)
            if last is not None:
                window &= Q(time__gte=last.swept_to - shortest - timedelta(minutes=5))
            orphans = Event.objects.filter(window).exclude(
                Exists(Delivery.objects.filter(event_id=OuterRef("pk")))
            )
            if self.dry_run:
                self._add("events", orphans.count())
                continue
            while not self.stop.is_set():
                with transaction.atomic():
                    durability.relax_current_transaction()
                    take_write_lock_if_needed(Delivery)  # any integer-keyed table: the lock is global
                    ids = list(lockable(orphans.order_by("time")).values_list("pk", flat=True)[: self.size])
                    if ids:
                        self._add("events", _delete_events(ids))
                if len(ids) < self.size:
                    break
        self.swept = not self.stop.is_set()

    # --- tables without dependents --------------------------------------------------------------

    def simple(self, kind: str, old: QuerySet, order: str) -> None:
        if self.dry_run:
            self._add(kind, old.count())
            return
        model = old.model
        while not self.stop.is_set():
            with transaction.atomic():
                durability.relax_current_transaction()
                take_write_lock_if_needed(model)
                ids = list(lockable(old.order_by(order)).values_list("pk", flat=True)[: self.size])
                if ids:
                    self._add(kind, _delete_in(model, "id", ids))
            if len(ids) < self.size:
                return


def _days(retention: Retention, status: str) -> timedelta:
    days = retention.succeeded_days if status == Delivery.Status.SUCCEEDED else retention.dead_days
    return timedelta(days=days)


def _delete_events_without_deliveries(event_ids: Iterable) -> int:
    """Delete those of ``event_ids`` that have no delivery left; inside the caller's transaction."""
    event, delivery = (connection.ops.quote_name(m._meta.db_table) for m in (Event, Delivery))
    where, params = _matching("e.id", Event._meta.pk, list(event_ids))
    # A replay adding a delivery to one of these holds its row: skipped (SKIP LOCKED), it stays.
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"SELECT e.id FROM {event} e WHERE {where} "
        f"AND NOT EXISTS (SELECT 1 FROM {delivery} d WHERE d.event_id = e.id){lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    return _delete_events(ids)


def _delete_events(ids: list) -> int:
    """Delete these events; their replay records stay (the audit of who replayed what), unlinked."""
    if not ids:
        return 0
    where, params = _matching("event_id", Event._meta.pk, ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(Replay._meta.db_table)} SET event_id = NULL WHERE {where}",
            params,
        )
    return _delete_in(Event, "id", ids)


def _delete_in(model: type[Model], field_name: str, values: list) -> int:
    """DELETE the rows of ``model`` whose ``field_name`` is one of ``values``: one statement, no signals.

    The pruner knows every table that points at the rows it deletes (tests/retention check that
    list against the models), so Django's cascade, which loads every row first, is not needed.
    """
    if not values:
        return 0
    column = model._meta.get_field(field_name)
    target = column.target_field if column.is_relation else column
    where, params = _matching(connection.ops.quote_name(column.column), target, values)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {where}", params)
        return cursor.rowcount


def _matching(column_sql: str, field, values: list) -> tuple[str, list]:
    """``column IN values`` as SQL and parameters: one array parameter on PostgreSQL.

    Thousands of separate parameters cost PostgreSQL more to parse and plan than the delete
    itself; one array does not.
    """
    params = [field.get_db_prep_value(value, connection, prepared=False) for value in values]
    if connection.vendor == "postgresql":
        return f"{column_sql} = ANY(%s)", [params]
    return f"{column_sql} IN ({', '.join(['%s'] * len(params))})", params


def _record(report: PruneReport, *, started_at: datetime, swept_to: datetime | None) -> None:
    previous = PruneRun.objects.order_by("-pk").values_list("totals", flat=True).first() or {}
    totals = {kind: int(previous.get(kind, 0)) + n for kind, n in report.counts.items()}
    PruneRun.objects.create(
        started_at=started_at,
        finished_at=timezone.now(),
        host=socket.gethostname(),
        counts=report.counts,
        totals=totals,
        complete=report.complete,
        swept_to=swept_to,
    )


def last_run() -> PruneRun | None:
    """The latest prune run (for the dashboard and /metrics), or None."""
    return PruneRun.objects.order_by("-pk").first()


def deleted_totals() -> dict[str, int]:
    """Rows deleted by every run so far, by kind (the latest run's running sums)."""
    run = last_run()
    return {kind: int((run.totals if run else {}).get(kind, 0)) for kind in KINDS}
