"""manage.py eventhub_prune: delete finished work older than its retention (docs/retention.md)."""

import time

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from eventhub import retention


class Command(BaseCommand):
    help = (
        "Delete succeeded and dead deliveries (with their attempts), events left without deliveries, "
        "hook failures, test deliveries and dashboard rollups older than their retention "
        "(EVENTHUB RETENTION_* settings; event types may override the delivery ones). Deletes in small "
        "batches, so emit and workers go on meanwhile. Only one pruner runs at a time across all hosts: "
        "if another is running, this one says so and exits. The worker's upkeep prunes by itself every "
        "PRUNE_INTERVAL_SECONDS; this command is for cron or a first large clean-up."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Rows per transaction (default: EVENTHUB PRUNE_BATCH_SIZE, 5000).",
        )

    def handle(self, *args, dry_run: bool = False, batch_size: int | None = None, **options):
        if batch_size is not None and not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be from 1 to 10000.")
        started = time.monotonic()
        last_shown = [0.0]

        def progress(kind: str, count: int) -> None:
            # At most once a second: a large first prune takes a while and should show it is moving.
            if time.monotonic() - last_shown[0] >= 1.0:
                last_shown[0] = time.monotonic()
                elapsed = time.monotonic() - started
                self.stdout.write(f"  {kind.replace('_', ' ')}: {count:,} so far ({elapsed:.0f}s)")

        try:
            report = retention.prune(dry_run=dry_run, batch_size=batch_size, progress=progress)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if report.skipped:
            self.stdout.write("Another pruner is running (on this or another host); nothing done.")
            return
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {report.total:,} rows in {report.seconds:.1f}s:")
        for kind, count in report.counts.items():
            self.stdout.write(f"  {kind.replace('_', ' ')}: {count:,}")
        if not report.complete:
            self.stdout.write("Stopped before the end; the next run goes on from there.")
