"""Dashboard page timings against a seeded database: server time per page, median and p95.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/eh_bench python manage.py eventhub_seed
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/eh_bench python -m bench.dashboard

Each page is requested in-process through Django's test client as a staff user
(no network, no browser), so the figure is the server's own time: URL routing,
queries and template rendering. See docs/dashboard.md.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

BUDGET_MS = 300.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first (3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--settings", default="config.settings", help="Django settings module")
    return parser.parse_args(argv)


def pages() -> list[tuple[str, str]]:
    """(name, URL) of every page and fragment the dashboard serves, with each filter."""
    from eventhub.models import Delivery, Event, Route

    route = Route.objects.order_by("pk").first()
    dead = Delivery.objects.filter(status="dead").order_by("-created_at").select_related("event").first()
    event = dead.event if dead else Event.objects.order_by("-time").first()
    found = [
        ("dashboard", "/eventhub/"),
        ("filter: event type", f"/eventhub/?type={event.type if event else 'x.y'}"),
        ("filter: route", f"/eventhub/?route={route.pk if route else 1}"),
        ("filter: status dead", "/eventhub/?status=dead"),
        ("filter: status problems", "/eventhub/?status=problems"),
        ("filter: last hour", "/eventhub/?range=1h"),
        ("filter: route+dead+7d", f"/eventhub/?route={route.pk if route else 1}&status=dead&range=7d"),
        ("search: subject", f"/eventhub/?q={event.subject if event else 'none'}"),
        ("search: event id", f"/eventhub/?q={event.pk if event else '00000000-0000-0000-0000-000000000000'}"),
        ("live: lists", "/eventhub/live/?parts=deliveries,problems"),
        ("live: figures+consumers", "/eventhub/live/?parts=figures,consumers"),
        ("metrics", "/metrics"),
    ]
    if event:
        found.append(("event page", f"/eventhub/events/{event.pk}/"))
    return found


def time_page(client, url: str, *, repeat: int, warmup: int) -> dict:
    """Median, p95 and max milliseconds of ``repeat`` requests, plus the query count and SQL time of one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        client.get(url)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        "max_ms": samples[-1],
        "queries": len(queries),
        # The database's share of one request (the rest is Python: views, templates).
        "sql_ms": sum(float(q["time"]) for q in queries.captured_queries) * 1000,
    }


def staff_client():
    """A test client logged in as a superuser made for the benchmark."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-dashboard", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def table_size() -> str:
    """The delivery count, estimated on PostgreSQL (an exact COUNT would be the slow part)."""
    from django.db import connection

    from eventhub.models import Delivery

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [Delivery._meta.db_table]
            )
            return f"~{cursor.fetchone()[0]:,} deliveries ({connection.vendor})"
    return f"{Delivery.objects.count():,} deliveries ({connection.vendor})"


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", args.settings)
    import django

    django.setup()
    from bench import machine

    client = staff_client()
    described = machine.describe()
    print(
        f"Dashboard server time, {table_size()}; {args.repeat} requests per page after {args.warmup} "
        f"warm-up; {described['cpu_model']}, {described['cores']} cores; load before {machine.load()}"
    )
    print(f"{'page':<26} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'queries':>8} {'SQL ms':>7}")
    results, slow = {}, []
    with machine.CpuDuring() as cpu:
        for name, url in pages():
            result = time_page(client, url, repeat=args.repeat, warmup=args.warmup)
            results[name] = {"url": url, **result}
            flag = "  over budget" if result["p95_ms"] > BUDGET_MS else ""
            slow += [name] if flag else []
            print(
                f"{name:<26} {result['median_ms']:>10.1f} {result['p95_ms']:>8.1f} "
                f"{result['max_ms']:>8.1f} {result['queries']:>8} {result['sql_ms']:>7.1f}{flag}"
            )
    print(f"load after {machine.load()}; CPU busy {cpu.usage['busy_pct']}%, stolen {cpu.usage['steal_pct']}%")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        document = {"machine": described, "cpu": cpu.usage, "load_after": machine.load(), "pages": results}
        Path(args.json).write_text(json.dumps(document, indent=2))
    print(f"p95 over {BUDGET_MS:.0f} ms: {', '.join(slow) if slow else 'none'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
