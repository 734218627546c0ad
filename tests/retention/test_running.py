"""Running the pruner: the command, one pruner at a time, refusal at start, and the worker's timer."""

import re
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from eventhub import retention
from eventhub.models import Delivery, PruneRun
from tests.support.factories import event_type, make_delivery, route
from tests.support.process import run_manage

DAY = timedelta(days=1)


@pytest.fixture
def a_route(db):
    return route(event_type(), "tests.record")


def test_the_command_prunes_and_prints_what_it_deleted(a_route):
    make_delivery(a_route, status="succeeded", ago=20 * DAY, attempts=2, error="e")
    kept = make_delivery(a_route, status="retrying", ago=20 * DAY)
    out = StringIO()

    call_command("eventhub_prune", stdout=out)

    text = out.getvalue()
    assert "Deleted 4 rows" in text
    assert "deliveries succeeded: 1" in text and "attempts: 2" in text and "events: 1" in text
    assert list(Delivery.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_dry_run_prints_counts_and_deletes_nothing(a_route):
    make_delivery(a_route, status="dead", ago=100 * DAY)
    out = StringIO()

    call_command("eventhub_prune", "--dry-run", stdout=out)

    assert "Would delete 3 rows" in out.getvalue() and "deliveries dead: 1" in out.getvalue()
    assert Delivery.objects.count() == 1 and not PruneRun.objects.exists()


def test_a_long_run_shows_progress(a_route, monkeypatch):
    for _ in range(5):
        make_delivery(a_route, status="succeeded", ago=20 * DAY)
    ticks = iter(range(0, 100_000, 2))  # every clock reading two seconds on: each batch is shown
    monkeypatch.setattr("eventhub.management.commands.eventhub_prune.time.monotonic", lambda: next(ticks))
    out = StringIO()

    call_command("eventhub_prune", "--batch-size", "2", stdout=out)

    progress = [line.strip() for line in out.getvalue().splitlines() if "so far" in line]
    delivered = [re.fullmatch(r"deliveries succeeded: (\d) so far \(\d+s\)", line) for line in progress]
    assert [int(m.group(1)) for m in delivered if m] == [2, 4, 5]
    assert "Deleted 15 rows" in out.getvalue()


def test_help_says_what_it_does():
    result = run_manage("eventhub_prune", "--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "Only one pruner runs at a time" in result.stdout


def test_a_bad_batch_size_is_refused(db):
    with pytest.raises(CommandError, match="--batch-size must be from 1 to 10000"):
        call_command("eventhub_prune", "--batch-size", "0")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "EVENTHUB_RETENTION_SUCCEEDED_DAYS",
            "0",
            'EVENTHUB["RETENTION_SUCCEEDED_DAYS"] = 0: give a whole number',
        ),
        (
            "EVENTHUB_PRUNE_BATCH_SIZE",
            "50000",
            'EVENTHUB["PRUNE_BATCH_SIZE"] = 50000: give a whole number from 1',
        ),
    ],
)
def test_nonsense_settings_stop_every_process_at_start(variable, value, message):
    result = run_manage("check", env=_env(**{variable: value}))
    assert result.returncode != 0
    assert message in result.stderr


def _env(**extra):
    from tests.support.process import command_env

    return command_env(**extra)


@pytest.mark.django_db(transaction=True)
def test_a_retention_shorter_than_a_routes_retry_window_stops_the_worker_and_the_pruner():
    kind = event_type("order.paid", retention_dead_days=1)
    patient = route(kind, "tests.record", name="patient", max_attempts=30, max_backoff_ms=3_600_000)
    make_delivery(patient, status="dead", ago=3 * DAY)

    worker = run_manage("eventhub_worker", "--queues", "nothing", "--processes", "1", timeout=60)
    pruner = run_manage("eventhub_prune", timeout=60)

    for result in (worker, pruner):
        assert result.returncode != 0
        assert (
            "order.paid: Retention of 1 days is shorter than the retry window of route 'patient'"
            in result.stderr
        )
    assert Delivery.objects.count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the advisory lock is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_two_pruners_at_once_one_prunes_the_other_skips():
    a_route = route(event_type(), "tests.record")
    for _ in range(4):
        make_delivery(a_route, status="succeeded", ago=20 * DAY)
    inside, release = threading.Event(), threading.Event()
    reports = []

    def first(kind, n):
        inside.set()
        release.wait(30)  # hold the lock while the second pruner, another process, tries

    def run():
        try:
            reports.append(retention.prune(batch_size=2, progress=first))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert inside.wait(30)
        second = run_manage("eventhub_prune", timeout=60)
    finally:
        release.set()
        thread.join(30)

    assert second.returncode == 0
    assert "Another pruner is running" in second.stdout
    assert reports[0].counts["deliveries_succeeded"] == 4 and not reports[0].skipped
    assert not Delivery.objects.exists()
    assert PruneRun.objects.count() == 1  # the skipped one recorded nothing


@pytest.mark.django_db(transaction=True)
def test_in_one_process_a_second_pruner_skips_too(a_route):
    make_delivery(a_route, status="succeeded", ago=20 * DAY)
    inside, release = threading.Event(), threading.Event()
    reports = []

    def run():
        try:
            reports.append(retention.prune(progress=lambda kind, n: (inside.set(), release.wait(30))))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert inside.wait(30)
        second = retention.prune()
    finally:
        release.set()
        thread.join(30)
    assert second.skipped and second.total == 0
    assert reports[0].counts["deliveries_succeeded"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_workers_upkeep_prunes_on_its_timer(a_route):
    old = make_delivery(a_route, status="succeeded", ago=20 * DAY)
    stop = threading.Event()
    thread = retention.start_pruner(stop=stop, interval=0.2)
    try:
        for _ in range(300):  # up to 30 s on a busy machine
            if PruneRun.objects.exists():
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert not Delivery.objects.filter(pk=old.pk).exists()
    run = PruneRun.objects.get()  # the 0.2 s interval had passed again, but a run had just finished
    assert run.counts["deliveries_succeeded"] == 1 and run.host


def test_the_upkeep_prunes_only_when_no_host_pruned_within_the_interval(a_route):
    from eventhub.retention.schedule import due

    assert due(interval=300)
    retention.prune()
    assert not due(interval=300)
