"""manage.py eventhub_seed: bulk demo or benchmark data (events, deliveries, attempts)."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from eventhub.dashboard import SeedPlan, seed


class Command(BaseCommand):
    help = (
        "Write many events, deliveries and attempts at once, spread over the last DAYS days, "
        "for the dashboard's benchmark or a demo. Uses COPY on PostgreSQL. Nothing is sent to the "
        "broker. Makes event types seed.type_N and routes seed-N-M if missing. Analyses the tables "
        "it wrote (ANALYZE) and reports how long each step took."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--deliveries", type=int, default=1_000_000, help="How many deliveries (1000000)."
        )
        parser.add_argument("--types", type=int, default=4, help="Event types to spread them over (4).")
        parser.add_argument(
            "--routes-per-type", type=int, default=2, help="Routes, and so deliveries, per event (2)."
        )
        parser.add_argument(
            "--days", type=float, default=30.0, help="Spread evenly over this many past days (30)."
        )
        parser.add_argument("--failure-rate", type=float, default=0.03, help="Share that is dead (0.03).")
        parser.add_argument("--retrying-rate", type=float, default=0.01, help="Share still retrying (0.01).")
        parser.add_argument("--no-attempts", action="store_true", help="Skip the attempt rows.")
        parser.add_argument("--batch", type=int, default=50_000, help="Deliveries per transaction (50000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed, for repeatable data (1).")

    def handle(self, *args, **options):
        if options["deliveries"] < 1 or options["types"] < 1 or options["routes_per_type"] < 1:
            raise CommandError("--deliveries, --types and --routes-per-type must be at least 1.")
        if options["days"] <= 0:
            raise CommandError("--days must be above 0.")
        plan = SeedPlan(
            deliveries=options["deliveries"],
            types=options["types"],
            routes_per_type=options["routes_per_type"],
            days=options["days"],
            failure_rate=options["failure_rate"],
            retrying_rate=options["retrying_rate"],
            attempts=not options["no_attempts"],
            batch=options["batch"],
            seed=options["seed"],
        )
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            self.stdout.write(f"\rseeded {done:,}/{total:,} deliveries ({rate:,.0f}/s)", ending="")
            self.stdout.flush()

        try:
            result = seed(plan, progress=progress)
        except IntegrityError as exc:
            # The same seed makes the same event ids: a second run with it collides with the first.
            raise CommandError(
                f"\nThe data of --seed {plan.seed} is already in the database (batches written before "
                f"this one stay). Run again with another --seed. ({exc})"
            ) from exc
        self.stdout.write(
            f"\nDone: {result.written:,} deliveries in {time.monotonic() - started:.1f}s "
            f"(writing {result.write_seconds:.1f}s, ANALYZE {result.analyse_seconds:.1f}s, "
            f"dashboard figures {result.figures_seconds:.1f}s)."
        )
