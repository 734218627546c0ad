"""python -m bench: run the benchmark and print one table; see docs/benchmark.md."""

import argparse
import os
import platform
import shutil
import sys
import time
import uuid
from pathlib import Path

FULL = {
    "n": 70_000,
    "n_single": 5_000,
    "batch": 500,
    "rate": 200.0,
    "seconds": 30.0,
    "history": 100_000,
    "ordered": 10_000,
}
QUICK = {
    "n": 2_000,
    "n_single": 1_000,
    "batch": 500,
    "rate": 100.0,
    "seconds": 3.0,
    "history": 10_000,
    "ordered": 1_000,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"small smoke run (defaults: {QUICK})")
    parser.add_argument("--n", type=int, help="messages per throughput phase (raw and eventhub batched)")
    parser.add_argument("--n-single", type=int, help="events for eventhub's one-at-a-time phase")
    parser.add_argument("--batch", type=int, help="events per emit_many call")
    parser.add_argument("--rate", type=float, help="events per second in the latency phases")
    parser.add_argument("--seconds", type=float, help="length of each latency phase")
    parser.add_argument(
        "--history", type=int, help="deliveries of earlier history the database holds before the run"
    )
    parser.add_argument(
        "--ordered", type=int, help="events in the ordering phase (ordered and unordered route)"
    )
    parser.add_argument("--keys", type=int, default=100, help="ordering keys in the ordering phase")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument("--only", choices=["raw", "eventhub", "ordered"], help="run one part only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="JSON directory")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from bench import eh, ordered, raw, report, services, stats

    services.ensure_database()
    services.ensure_history(args.history)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    work = args.out / f"tmp-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    config = {
        key: getattr(args, key)
        for key in (
            "n",
            "n_single",
            "batch",
            "rate",
            "seconds",
            "history",
            "ordered",
            "keys",
            "processes",
            "threads",
            "quick",
        )
    }
    config.update(run_id=run_id, load_before=stats.load(), machine=_machine())
    queues = [f"bench-raw-{run_id}", f"bench-eh-{run_id}", f"bench-ord-{run_id}"]
    results: dict = {}
    try:
        if args.only in (None, "raw"):
            (work / "raw").mkdir()
            results["raw"] = raw.run(
                n=args.n,
                rate=args.rate,
                seconds=args.seconds,
                processes=args.processes,
                threads=args.threads,
                queue=queues[0],
                out_dir=str(work / "raw"),
                log=work / "raw-workers.log",
            )
        if args.only in (None, "eventhub"):
            (work / "eventhub").mkdir()
            results["eventhub"] = eh.run(
                n=args.n,
                n_single=args.n_single,
                batch=args.batch,
                rate=args.rate,
                seconds=args.seconds,
                processes=args.processes,
                threads=args.threads,
                queue=queues[1],
                out_dir=str(work / "eventhub"),
                log=work / "eventhub-workers.log",
            )
        if args.only in (None, "ordered"):
            (work / "ordered").mkdir()
            results["ordered"] = ordered.run(
                n=args.ordered,
                keys=args.keys,
                batch=args.batch,
                processes=args.processes,
                threads=args.threads,
                queue=queues[2],
                out_dir=str(work / "ordered"),
                log=work / "ordered-workers.log",
                rounds=1 if args.quick else 2,
            )
    finally:
        services.delete_queues(queues)
    config["load_after"] = stats.load()
    print(report.render(results, config))
    if "ordered" in results:
        print("\n" + ordered.render(results["ordered"]))
    path = args.out / f"bench-{run_id}.json"
    report.write_json(path, results, config)
    print(f"\nresults written to {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _machine() -> dict:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    sys.exit(main())
