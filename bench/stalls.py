"""Where eventhub's slow latency samples come from: each one lined up against the periodic work.

    python -m bench.stalls [--rate 200] [--seconds 30] [--slow-ms 0 (p98)]

Starts ``eventhub_worker`` with tracing on (bench/trace.py), emits one event per
transaction at the rate, and for the slowest samples prints what they spent
their time on (inside emit(), from emit() returning to the handler starting, from
the handler to the outcome committed) and which traced work overlapped them,
against how often that work overlaps any sample: work found far more often beside
slow samples than beside all of them is the stall.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stalls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--slow-ms", type=float, default=0.0, help="slow sample threshold (default: p98)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--min-event-ms", type=float, default=2.0, help="ignore traced work shorter than this"
    )
    parser.add_argument("--keep", type=Path, help="keep the trace files in this directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    directory = str(args.keep) if args.keep else tempfile.mkdtemp(prefix="bench-stalls-")
    os.makedirs(directory, exist_ok=True)
    os.environ["BENCH_TRACE_DIR"] = directory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    samples = measure(args, directory)
    from bench import trace

    print(analyse(samples, trace.read(directory), args))
    print(f"trace files in {directory}")
    return 0


def measure(args: argparse.Namespace, directory: str) -> list[dict]:
    """Run the latency phase with tracing; one dict per event with its timestamps."""
    from bench import eh, pacing, recorder, services
    from bench.upkeep import AutovacuumStandIn
    from eventhub import emit
    from eventhub.models import Delivery
    from eventhub.outbox import route_table

    services.ensure_database()
    route_table.refresh_in_background()  # as config/wsgi.py does in a web process
    queue = f"bench-stalls-{uuid.uuid4().hex[:6]}"
    route = eh._route(eh.LATENCY, queue)
    services.clear_bench_rows([route.pk])
    returned: dict[int, float] = {}

    def call(i: int) -> None:
        emit(eh.LATENCY, data={"t": time.time(), "p": "-stalls", "i": i})
        returned[i] = time.time()

    workers = services.eventhub_workers(
        queue, args.processes, args.threads, directory, Path(directory) / "w.log"
    )
    try:
        workers.wait_consuming(queue, args.processes)
        if os.environ.get("BENCH_STALLS_STAND_IN"):  # as the latency phases ran before this round
            with AutovacuumStandIn():
                time.sleep(2)
                pacing.at_rate(call, rate=args.rate, seconds=args.seconds, label="latency")
        else:
            time.sleep(2)
            pacing.at_rate(call, rate=args.rate, seconds=args.seconds, label="latency")
        eh._wait_succeeded(route, int(args.rate * args.seconds), workers)
    finally:
        workers.stop()
        services.delete_queues([queue])
    handler = {int(r[2]): r[1] for r in recorder.read(directory, "eventhub-stalls")}
    rows = Delivery.objects.filter(route=route).values_list("finished_at", "event__data")
    samples = []
    for finished, data in rows:
        samples.append(
            {
                "t": data["t"],
                "returned": returned.get(data["i"], data["t"]),
                "handler": handler.get(data["i"]),
                "finished": finished.timestamp(),
            }
        )
    services.clear_bench_rows([route.pk])
    return samples


def analyse(samples: list[dict], events: list[dict], args: argparse.Namespace) -> str:
    """Slow samples' time split, and which traced work overlaps them more often than chance."""
    from bench import stats

    latencies = sorted((s["finished"] - s["t"]) * 1000 for s in samples)
    threshold = args.slow_ms or stats.percentile(latencies, 98)
    slow = [s for s in samples if (s["finished"] - s["t"]) * 1000 >= threshold]
    events = [e for e in events if e["s"] * 1000 >= args.min_event_ms]
    out = [
        f"{len(samples)} samples at {args.rate:g}/s: p50 {stats.percentile(latencies, 50):.1f} ms, "
        f"p95 {stats.percentile(latencies, 95):.1f}, p99 {stats.percentile(latencies, 99):.1f}, "
        f"max {latencies[-1]:.1f}; {len(slow)} samples at or over {threshold:.1f} ms",
        "",
        "where the slow samples spent their time (median ms): "
        + ", ".join(f"{name} {value:.1f}" for name, value in _split(slow).items()),
        "the same for all samples: "
        + ", ".join(f"{name} {value:.1f}" for name, value in _split(samples).items()),
        "",
        f"traced work of at least {args.min_event_ms:g} ms overlapping a sample "
        "(share of slow samples / of all samples):",
    ]
    for kind, (in_slow, in_all, durations) in _overlaps(slow, samples, events).items():
        median = stats.percentile(durations, 50)
        out.append(
            f"  {kind:<34} {in_slow:6.1%} / {in_all:6.1%}   (median {median:.1f} ms, "
            f"max {max(durations):.1f} ms, {len(durations)} in the run)"
        )
    return "\n".join(out)


def _split(samples: list[dict]) -> dict[str, float]:
    from bench import stats

    parts = {"inside emit()": [], "to the handler": [], "handler to outcome": []}
    for s in samples:
        parts["inside emit()"].append((s["returned"] - s["t"]) * 1000)
        if s["handler"] is not None:
            parts["to the handler"].append((s["handler"] - s["returned"]) * 1000)
            parts["handler to outcome"].append((s["finished"] - s["handler"]) * 1000)
    return {name: stats.percentile(values, 50) for name, values in parts.items() if values}


def _overlaps(slow: list[dict], samples: list[dict], events: list[dict]) -> dict:
    def label(e: dict) -> str:
        detail = e.get("name") or (f"gen {e['generation']}" if "generation" in e else "")
        return f"{e['kind']} {detail}".strip() + (" (emitter)" if e["pid"] == os.getpid() else "")

    def hits(group: list[dict]) -> Counter:
        found = Counter()
        for s in group:
            kinds = {label(e) for e in events if e["t"] < s["finished"] and e["t"] + e["s"] > s["t"]}
            found.update(kinds)
        return found

    in_slow, in_all = hits(slow), hits(samples)
    durations: dict[str, list[float]] = {}
    for e in events:
        durations.setdefault(label(e), []).append(e["s"] * 1000)
    return {
        kind: (in_slow[kind] / max(len(slow), 1), in_all[kind] / max(len(samples), 1), durations[kind])
        for kind in sorted(durations, key=lambda k: -in_slow[k])
    }


if __name__ == "__main__":
    sys.exit(main())
