"""python -m bench: run the benchmark in rounds and print one table of medians; see docs/benchmark.md."""

import argparse
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

FULL = {
    "n": 30_000,
    "n_single": 5_000,
    "batch": 500,
    "rates": "200,1000",
    "seconds": 20.0,
    "history": 100_000,
    "repeat": 3,
    "webhook_n": 5_000,
    "ordered": 10_000,
}
QUICK = {
    "n": 2_000,
    "n_single": 1_000,
    "batch": 500,
    "rates": "200,1000",
    "seconds": 2.0,
    "history": 10_000,
    "repeat": 1,
    "webhook_n": 500,
    "ordered": 1_000,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"small smoke run (defaults: {QUICK})")
    parser.add_argument("--repeat", type=int, help="rounds; each figure is the median over them (3)")
    parser.add_argument("--n", type=int, help="messages per throughput phase (raw and eventhub batched)")
    parser.add_argument("--n-single", type=int, help="events for eventhub's one-at-a-time phase")
    parser.add_argument("--batch", type=int, help="events per emit_many call")
    parser.add_argument("--rates", help="events per second of the latency phases, comma-separated (200,1000)")
    parser.add_argument("--seconds", type=float, help="length of each latency phase")
    parser.add_argument("--webhook-n", type=int, help="requests per webhook phase (0 leaves them out)")
    parser.add_argument(
        "--history", type=int, help="deliveries of earlier history the database holds before the run"
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument(
        "--ordered",
        type=int,
        help="events in the ordering phase (ordered and unordered route); 0 leaves it out",
    )
    parser.add_argument("--keys", type=int, default=100, help="ordering keys in the ordering phase")
    parser.add_argument(
        "--only", choices=["raw", "eventhub", "webhooks", "ordered"], help="run one part only"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="JSON directory")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.rates = [float(r) for r in str(args.rates).split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates takes numbers separated by commas, got {args.rates!r}")
    if args.repeat < 1 or any(r <= 0 for r in args.rates):
        parser.error("--repeat and every rate must be above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from bench import calibrate, machine, report, services
    from bench.progress import say

    services.ensure_database()
    services.ensure_history(args.history)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    work = args.out / f"tmp-{run_id}"
    config = {
        key: getattr(args, key)
        for key in (
            "repeat",
            "n",
            "n_single",
            "batch",
            "rates",
            "seconds",
            "webhook_n",
            "history",
            "ordered",
            "keys",
        )
    }
    config.update(processes=args.processes, threads=args.threads, quick=args.quick, only=args.only)
    config.update(run_id=run_id, machine=machine.describe(), load_before=machine.load())
    config["webhook_phases"] = webhook_phases(args)
    say("calibrating: Python, PostgreSQL commits, RabbitMQ confirms...")
    config["calibration_before"] = calibrate.run(services.broker_url())
    say("calibration: " + calibrate.headline(config["calibration_before"]))
    cpu_before = machine.CpuTimes.now()
    rounds = []
    try:
        if args.only != "ordered":
            for index in range(args.repeat):
                say(f"round {index + 1}/{args.repeat} (load {machine.load()})")
                rounds.append(run_round(args, run_id, work / f"round-{index + 1}"))
        if args.ordered and args.only in (None, "ordered"):
            config["ordered"] = run_ordered(args, run_id, work / "ordered")
    finally:
        services.delete_queues(queue_names(run_id))
    config["cpu"] = machine.cpu_usage(cpu_before, machine.CpuTimes.now())
    config["load_after"] = machine.load()
    config["calibration_after"] = calibrate.run(services.broker_url())
    if rounds:
        print(report.render(rounds, config))
    if isinstance(config.get("ordered"), dict):  # run (else the --ordered count of the settings)
        from bench import ordered

        print("\n" + ordered.render(config["ordered"]))
    path = args.out / f"bench-{run_id}.json"
    report.write_json(path, rounds, config)
    print(f"\nresults written to {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def queue_names(run_id: str) -> list[str]:
    """The run's own queues: raw Dramatiq's, eventhub's, eventhub's webhook deliveries'."""
    return [f"bench-raw-{run_id}", f"bench-eh-{run_id}", f"bench-hook-{run_id}", f"bench-ord-{run_id}"]


def webhook_phases(args: argparse.Namespace) -> list[str]:
    """Names of the webhook phases this run measures."""
    from bench import webhooks

    if not args.webhook_n or args.only in ("raw", "eventhub"):
        return []
    return list(webhooks.PHASES)


def run_round(args: argparse.Namespace, run_id: str, work: Path) -> dict:
    """One round: raw Dramatiq's phases, then eventhub's, then the webhook phases."""
    from bench import eh, raw, webhooks

    raw_queue, eh_queue, hook_queue, _ = queue_names(run_id)
    result: dict = {}
    common = {"processes": args.processes, "threads": args.threads}
    if args.only in (None, "raw"):
        (work / "raw").mkdir(parents=True)
        result["raw"] = raw.run(
            n=args.n,
            rates=args.rates,
            seconds=args.seconds,
            queue=raw_queue,
            out_dir=str(work / "raw"),
            log=work / "raw-workers.log",
            **common,
        )
    if args.only in (None, "eventhub"):
        (work / "eventhub").mkdir(parents=True)
        result["eventhub"] = eh.run(
            n=args.n,
            n_single=args.n_single,
            batch=args.batch,
            rates=args.rates,
            seconds=args.seconds,
            queue=eh_queue,
            out_dir=str(work / "eventhub"),
            log=work / "eventhub-workers.log",
            **common,
        )
    if webhook_phases(args):
        (work / "webhooks").mkdir(parents=True)
        result["webhooks"] = webhooks.run(
            n=args.webhook_n, queue=hook_queue, out_dir=work / "webhooks", **common
        )
    return result


def run_ordered(args: argparse.Namespace, run_id: str, work: Path) -> dict:
    """The ordering phase (its own turns inside): an ordered route against an unordered one."""
    from bench import ordered
    from bench.progress import say

    work.mkdir(parents=True)
    say(f"ordering phase: {args.ordered} events over {args.keys} keys")
    return ordered.run(
        n=args.ordered,
        keys=args.keys,
        batch=args.batch,
        processes=args.processes,
        threads=args.threads,
        queue=queue_names(run_id)[3],
        out_dir=str(work),
        log=work / "ordered-workers.log",
    )


if __name__ == "__main__":
    sys.exit(main())
