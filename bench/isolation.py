"""python -m bench.isolation: a broken route must not slow a healthy one on the same workers (issue 18).

Two webhook routes share one queue and one set of workers (``--processes`` x
``--threads``, 1 x 8 by default). The healthy one posts to a receiver that answers
at once; events are emitted one per transaction, ``--rate`` a second for each route,
for ``--seconds``. Cases, each on fresh workers, a fresh queue and both routes' health
reset (closed, no failures on record), so that the broken cases include the circuit's
opening:

- ``baseline``: the second route's endpoint is healthy too (a receiver of its own that
  answers at once). The only difference from the broken cases is how its endpoint
  answers: the question is whether a bad endpoint slows the others, against the same
  endpoint when good.
- ``hang``: the second route's endpoint never answers; each attempt ends at the route's
  time limit (``--time-limit-ms``, 5 s). Default retry policy and circuit breaker.
- ``500``: the second route's endpoint answers 500 to everything.
- ``alone`` (reference, not a target): no second route at all. The second stream of
  events is still emitted (to an event type without an enabled route), so the machine
  does the same emitting, but no delivery of it is recorded or held.

Measured on the healthy route: throughput (deliveries succeeded per second, from the
first emit to the last outcome recorded) and the p50/p99 latency from emit() to the
outcome recorded, after a warm-up of the healthy route alone (3 s, left out). Each
figure is the median over ``--repeat`` rounds (3); the cases take turns within a
round, so that load from elsewhere on the machine spreads over all of them. The
target: ``hang`` and ``500`` within 10% of ``baseline``.
"""

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

CASES = ("baseline", "hang", "500", "alone")
HEALTHY, BROKEN = "bench.iso.healthy", "bench.iso.broken"
TARGET = 0.10
# Below this share of the offered rate the baseline itself does not keep up: no verdict is given.
SATURATED = 0.9
WARMUP_SECONDS = 3.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second for each route (200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each case emits (20)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians over them (3)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (8)")
    parser.add_argument("--time-limit-ms", type=int, default=5000, help="the broken route's time limit")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="JSON directory")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    if set(args.cases) - set(CASES) or args.repeat < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error(f"--cases takes {', '.join(CASES)}; --repeat, --rate and --seconds must be above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from bench import machine, services
    from bench.progress import say
    from bench.webhooks import Receiver

    services.ensure_database()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    work = args.out / f"tmp-isolation-{run_id}"
    work.mkdir(parents=True)
    config = {**{k: v for k, v in vars(args).items() if k != "out"}, "run_id": run_id}
    config.update(machine=machine.describe(), load_before=machine.load())
    rounds: list[dict] = []
    with (
        Receiver(0.0, work / "healthy.log") as healthy,
        Receiver(0.0, work / "second.log") as second,
        Receiver(0.0, work / "hang.log", "--hang") as hang,
        Receiver(0.0, work / "500.log", "--status", "500") as failing,
    ):
        broken_urls = {"baseline": second, "hang": hang, "500": failing}
        for index in range(args.repeat):
            say(f"isolation round {index + 1}/{args.repeat} (load {machine.load()})")
            rounds.append(
                {
                    case: run_case(
                        case,
                        args,
                        healthy_url=_url(healthy),
                        broken_url=_url(broken_urls[case]) if case in broken_urls else "",
                        queue=f"bench-iso-{run_id}-{index}-{case}",
                        work=work,
                    )
                    for case in args.cases
                }
            )
    config["load_after"] = machine.load()
    print(render(rounds, config))
    path = args.out / f"isolation-{run_id}.json"
    path.write_text(json.dumps({"config": config, "rounds": rounds}, indent=2, default=str) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nresults written to {path}")
    return 0


def _url(receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}/hook"


def run_case(
    case: str, args: argparse.Namespace, *, healthy_url: str, broken_url: str, queue: str, work
) -> dict:
    """One case on fresh workers and a fresh queue; the healthy route's figures and the broken one's."""
    from django.db import connection

    from bench import machine, pacing, services, stats
    from bench.progress import say
    from eventhub import broker as brokers
    from eventhub import emit
    from eventhub.models import Delivery, RouteHealth
    from eventhub.outbox import background, route_table

    healthy, broken = _routes(queue, healthy_url, broken_url, args.time_limit_ms)
    services.clear_bench_rows([healthy.pk, broken.pk])
    # Each case starts from healthy routes: the broken cases then include the failures that open the circuit.
    RouteHealth.objects.filter(route__in=[healthy, broken]).delete()
    route_table.invalidate()
    brokers.get_broker().declare_queue(queue, ensure=True)
    log = work / f"workers-{queue}.log"
    workers = services.eventhub_workers(queue, args.processes, args.threads, str(work), log)
    try:
        workers.wait_consuming(queue, args.processes)
        # Warm-up, the same in every case and left out of the figures: the healthy route's events alone
        # for a few seconds, so that a cold worker process (connections, copies, the route's pace in the
        # thread share) is not what the first samples measure. The second route is new when the case starts.
        pacing.at_rate(
            lambda i: emit(HEALTHY, data={"t": time.time(), "i": i}),
            rate=args.rate,
            seconds=WARMUP_SECONDS,
            label=f"isolation {case} warm-up",
            on_thread_exit=lambda: connection.close(),
        )
        background.flush(timeout=60)
        warmed = Delivery.objects.filter(route=healthy)
        _wait_healthy(healthy, warmed.count(), workers)
        after = warmed.order_by("-pk").values_list("pk", flat=True).first() or 0
        measured = Delivery.objects.filter(route=healthy, pk__gt=after)
        say(f"  {case}: {args.rate:g}/s to each route for {args.seconds:g} s")
        started = time.time()
        kinds = (HEALTHY, BROKEN)
        with machine.CpuDuring() as cpu:
            paced = pacing.at_rate(
                lambda i: emit(kinds[i % 2], data={"t": time.time(), "i": i}),
                rate=2 * args.rate,
                seconds=args.seconds,
                label=f"isolation {case}",
                on_thread_exit=lambda: connection.close(),  # each pacing thread's own connection
            )
            background.flush(timeout=60)
            count = measured.count()
            _wait_healthy(healthy, count, workers, measured=measured)
        rows = list(measured.values_list("finished_at", "event__data"))
        latencies = [finished.timestamp() - data["t"] for finished, data in rows]
        # When the slowest ones were emitted (seconds into the case): a cluster points at one event.
        slowest = sorted(((lat, data["t"] - started) for (_, data), lat in zip(rows, latencies, strict=True)))
        slowest = [{"at_s": round(at, 2), "ms": round(lat * 1000, 1)} for lat, at in slowest[-10:]]
        seconds = max(finished.timestamp() for finished, _ in rows) - started
        result = {
            "healthy": {
                "count": count,
                "rate": stats.rate(count, seconds),
                **stats.latency_summary(latencies),
            },
            "second": _broken_figures(broken),
            "slowest": slowest,
            "emitted_per_second": paced["achieved_rate"],
            "cpu": cpu.usage,
            "load": machine.load(),
        }
        say(
            f"  {case}: healthy {result['healthy']['rate']:.0f}/s, p50 {result['healthy']['p50_ms']:.0f} ms, "
            f"p99 {result['healthy']['p99_ms']:.0f} ms; second route {result['second']}"
        )
        return result
    finally:
        workers.stop()
        services.delete_queues([queue])
        services.clear_bench_rows([healthy.pk, broken.pk])


def _routes(queue: str, healthy_url: str, broken_url: str, time_limit_ms: int):
    from eventhub.models import EventType, Route

    routes = []
    for name, url in ((HEALTHY, healthy_url), (BROKEN, broken_url)):
        event_type, _ = EventType.objects.update_or_create(
            name=name, defaults={"active": True, "schema": None}
        )
        route, _ = Route.objects.update_or_create(
            name=f"route-{name}",
            defaults={
                "event_type": event_type,
                "destination_kind": Route.Kind.WEBHOOK,
                "target": url or "http://127.0.0.1:9/unused",
                "queue": queue,
                "enabled": bool(url),  # "alone" emits the second stream to no route
                "filter": {},
                "time_limit_ms": time_limit_ms if name == BROKEN else 60_000,
                "rate_limit": None,
                "max_in_flight": None,
            },
        )
        routes.append(route)
    return routes


def _wait_healthy(route, count: int, workers, *, measured=None) -> None:
    """Wait until ``count`` of the route's deliveries (of ``measured``, default all) have succeeded."""
    from eventhub.models import Delivery

    deadline = time.monotonic() + 120
    rows = measured if measured is not None else Delivery.objects.filter(route=route)
    done = rows.filter(status=Delivery.Status.SUCCEEDED)
    while done.count() < count:
        if time.monotonic() > deadline or workers.process.poll() is not None:
            raise RuntimeError(
                f"the healthy route's {count} deliveries did not all succeed; see {workers.log}"
            )
        time.sleep(0.5)


def _broken_figures(route) -> dict:
    """The second route's deliveries by status and their attempts so far (none when ``alone``)."""
    from django.db.models import Count, Sum

    from eventhub.models import Delivery

    rows = (
        Delivery.objects.filter(route=route)
        .values("status")
        .annotate(n=Count("pk"), attempts=Sum("attempts"))
    )
    return {row["status"]: {"deliveries": row["n"], "attempts": row["attempts"]} for row in rows}


def render(rounds: list[dict], config: dict) -> str:
    """The table: each case's healthy-route figures (medians over rounds, min-max) against the baseline."""
    from bench import stats

    out = [
        f"isolation - healthy route at {config['rate']:g}/s beside a broken one at {config['rate']:g}/s, "
        f"{config['processes']} x {config['threads']} threads, {config['seconds']:g} s per case, "
        f"medians of {len(rounds)} round(s); load {config['load_before']} -> {config['load_after']}",
        f"  {'case':<9} {'healthy/s':>18} {'p50 ms':>20} {'p99 ms':>22}   vs baseline "
        "(target: hang and 500 within 10%)",
    ]
    medians = {}
    for case in config["cases"]:
        figures = {
            key: stats.spread([r[case]["healthy"][key] for r in rounds])
            for key in ("rate", "p50_ms", "p99_ms")
        }
        medians[case] = {key: f["median"] for key, f in figures.items()}
        cells = [
            f"{f['median']:>7.1f} ({f['min']:.0f}-{f['max']:.0f})".rjust(width)
            for f, width in zip(figures.values(), (18, 20, 22), strict=True)
        ]
        out.append(f"  {case:<9} {cells[0]} {cells[1]} {cells[2]}   {_versus(medians, case, config['rate'])}")
    base = medians.get("baseline")
    if base is not None and base["rate"] < SATURATED * config["rate"]:
        out.append(
            f"  NO VERDICT: the baseline's healthy route made {base['rate']:.0f}/s "
            f"of the {config['rate']:g}/s offered, so this machine is saturated at this rate "
            "and the cases compare queues, not isolation. Run again with a lower --rate."
        )
    return "\n".join(out)


def _versus(medians: dict, case: str, rate_offered: float) -> str:
    base = medians.get("baseline")
    if case == "baseline" or base is None:
        return ""
    mine = medians[case]
    rate = mine["rate"] / base["rate"] - 1
    p50, p99 = mine["p50_ms"] / base["p50_ms"] - 1, mine["p99_ms"] / base["p99_ms"] - 1
    ok = rate >= -TARGET and p50 <= TARGET and p99 <= TARGET
    figures = f"throughput {rate:+.0%}, p50 {p50:+.0%}, p99 {p99:+.0%}"
    if case == "alone":
        return f"{figures} (reference: no second route)"
    if base["rate"] < SATURATED * rate_offered:
        return f"{figures}: no verdict (saturated)"
    return f"{figures}: {'within' if ok else 'OUTSIDE'} 10%"


if __name__ == "__main__":
    sys.exit(main())
