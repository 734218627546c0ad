"""python -m bench.prune: emit latency and worker throughput with the pruner deleting old rows, and without.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/eh_bench BROKER_URL=amqp://... python -m bench.prune
    python -m bench.prune --rows 5000000          # the issue's figure (seeding takes a while)

It seeds ``--rows`` deliveries of history spread over 30 days (``eventhub_seed``'s
writer), then runs the same two measurements twice, first without and then while
``manage.py eventhub_prune`` (another process, as the worker's upkeep would be)
deletes everything older than a day:

- **emit**: ``emit()`` one event per transaction at ``--rate`` for ``--seconds``;
  p50/p99 of the call (what a web request waits);
- **throughput**: ``emit_many`` of ``--n`` events with the workers running; the
  deliveries per second from the first call to the last outcome recorded.

and reports the pruner's own rate (rows and deliveries per second). docs/retention.md
has the figures and what they decided (partitioning or not).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.prune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="deliveries of history to seed (200000)")
    parser.add_argument("--rate", type=float, default=200.0, help="emit() calls per second (200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the emit measurement (20)")
    parser.add_argument("--n", type=int, default=10_000, help="events of the throughput measurement (10000)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (8)")
    parser.add_argument("--batch-size", type=int, default=5_000, help="pruner rows per transaction (5000)")
    parser.add_argument("--json", type=Path, help="also write the results here (default bench/results/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from bench import services

    services.ensure_database()
    RESULTS.mkdir(exist_ok=True)
    result = run(args)
    path = args.json or RESULTS / f"prune-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(report(result))
    print(f"results: {path}")
    return 0


def run(args: argparse.Namespace) -> dict:
    from bench import eh, machine, services
    from eventhub import broker as brokers
    from eventhub.outbox import route_table

    queue = f"bench-prune-{os.getpid()}"
    route = eh._route(eh.NOOP, queue)
    route_table.refresh_in_background()
    brokers.get_broker().declare_queue(queue, ensure=True)
    services.clear_bench_rows([route.pk])
    result: dict = {"args": vars(args) | {"json": str(args.json or "")}, "machine": machine.describe()}
    result["seed"] = _seed(args.rows)
    log = RESULTS / f"prune-workers-{os.getpid()}.log"
    workers = services.eventhub_workers(queue, args.processes, args.threads, str(RESULTS), log)
    try:
        workers.wait_consuming(queue, args.processes)
        result["load_before"] = machine.load()
        result["without"] = _measure(args, route, workers)
        pruner = _Pruner(args)
        result["with"] = _measure(args, route, workers)
        result["with"]["pruner_still_running_at_end"] = pruner.running()
        result["prune"] = pruner.finish()
        result["load_after"] = machine.load()
    finally:
        workers.stop()
        services.clear_bench_rows([route.pk])
        services.delete_queues([queue])
    return result


def _seed(rows: int) -> dict:
    from django.db import connection

    from bench.progress import Progress
    from eventhub.dashboard.seeding import SeedPlan, seed
    from eventhub.models import Attempt, Delivery, Event

    writing = Progress("seeding history", rows, unit="deliveries")
    started = time.monotonic()
    # A fresh random seed each run: the last run's unpruned events keep the ids a fixed seed would repeat.
    plan = SeedPlan(deliveries=rows, days=30.0, seed=time.time_ns())
    seeded = seed(plan, progress=lambda done, total: writing.update(done))
    writing.finish()
    with connection.cursor() as cursor:
        for model in (Attempt, Delivery, Event):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {
        "deliveries": seeded.written,
        "seconds": time.monotonic() - started,
        "table_deliveries": Delivery.objects.count(),
    }


def _measure(args: argparse.Namespace, route, workers) -> dict:
    from bench import eh, machine, pacing, services, stats
    from eventhub import emit

    took: list[float] = []

    def one(i: int) -> None:
        clock = time.perf_counter()
        emit(eh.NOOP, data={"i": i})
        took.append(time.perf_counter() - clock)

    from django.db import connection

    with machine.CpuDuring() as cpu:
        paced = pacing.at_rate(one, rate=args.rate, seconds=args.seconds, label="emit at a fixed rate",
                               on_thread_exit=lambda: connection.close())  # fmt: skip
    eh._wait_succeeded(route, paced["sent"], workers)
    services.clear_bench_rows([route.pk])
    throughput = eh._throughput(route, args.n, 500, workers, f"emit_many of {args.n}, workers draining")
    services.clear_bench_rows([route.pk])
    return {
        "emit": stats.latency_summary(took) | {"achieved_rate": paced["achieved_rate"], "cpu": cpu.usage},
        "throughput": throughput["end_to_end"],
    }


class _Pruner:
    """``manage.py eventhub_prune`` keeping one day, in its own process, its output read as it comes."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench import services

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "EVENTHUB_RETENTION_SUCCEEDED_DAYS": "1",
            "EVENTHUB_RETENTION_DEAD_DAYS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, "manage.py", "eventhub_prune", "--batch-size", str(args.batch_size)]
        self.process = subprocess.Popen(argv, cwd=services.ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.deleting = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.deleting.wait(600)  # its first progress line: it is deleting (or it is done)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self.deleting.set()
        self.deleting.set()

    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self) -> dict:
        self.process.wait()
        self.reader.join(30)
        out = "".join(self.lines)
        if self.process.returncode:
            raise RuntimeError(f"eventhub_prune failed:\n{out}")
        counts = {
            m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"^  ([a-z ]+): ([\d,]+)$", out, re.M)
        }
        seconds = float(re.search(r"rows in ([\d.]+)s", out).group(1))
        total = sum(counts.values())
        deliveries = counts.get("deliveries succeeded", 0) + counts.get("deliveries dead", 0)
        return {
            "counts": counts,
            "seconds": seconds,
            "rows_per_second": total / seconds if seconds else 0.0,
            "deliveries_per_second": deliveries / seconds if seconds else 0.0,
            "progress": [line.strip() for line in self.lines if "so far" in line],
        }


def report(result: dict) -> str:
    """The figures as a few lines of text."""
    lines = [
        f"bench.prune: {result['seed']['deliveries']:,} deliveries seeded "
        f"(table {result['seed']['table_deliveries']:,}); machine {result['machine']}",
        f"load before {result['load_before']}, after {result['load_after']}",
        f"{'':12} {'emit p50':>10} {'emit p99':>10} {'emit max':>10} {'deliveries/s':>14}",
    ]
    for name in ("without", "with"):
        part = result[name]
        emit = part["emit"]
        lines.append(
            f"{name + ' prune':12} {emit['p50_ms']:>8.1f}ms {emit['p99_ms']:>8.1f}ms "
            f"{emit['max_ms']:>8.1f}ms {part['throughput']['rate']:>14,.0f}"
        )
    prune = result["prune"]
    lines.append(
        f"pruner: {sum(prune['counts'].values()):,} rows in {prune['seconds']:.1f}s = "
        f"{prune['rows_per_second']:,.0f} rows/s, {prune['deliveries_per_second']:,.0f} deliveries/s "
        f"(still running when the 'with' measurements ended: {result['with']['pruner_still_running_at_end']})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
