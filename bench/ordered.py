"""The ordering phase: N events over K keys through an ordered route and an unordered one, same run.

Both routes go to the same recording handler (bench/consumers.py ``bench.keyed``) on
the same workers; events are emitted with ``emit_many`` while the workers run. The
ordered route's key is ``{data.key}``. The two routes take turns (``rounds`` times
each), so that a load spike from other work on the machine does not land on one
route only; each route's best round is reported, with every round in the JSON.
Reported: each route's end-to-end rate, their ratio, and for each route how many
keys ran their events in emit order, one at a time (checked in every round).
"""

import time
from collections import defaultdict
from pathlib import Path

from django.utils import timezone

from bench import eh, machine, recorder, services, stats
from eventhub import emit_many
from eventhub.models import Route
from eventhub.outbox import background

UNORDERED, ORDERED = "bench.keyed", "bench.ordered"


def run(
    *,
    n: int,
    keys: int,
    batch: int,
    processes: int,
    threads: int,
    queue: str,
    out_dir: str,
    log: Path,
    rounds: int = 2,
) -> dict:
    """Unordered and ordered in turns on one set of workers; returns the rates and the order checks."""
    routes = {name: _route(name, queue, ordered=name == ORDERED) for name in (UNORDERED, ORDERED)}
    ids = [r.pk for r in routes.values()]
    services.clear_bench_rows(ids)
    workers = services.eventhub_workers(queue, processes, threads, out_dir, log)
    try:
        workers.wait_consuming(queue, processes)
        result = {"n": n, "keys": keys, "batch": batch, "rounds": rounds, "load_before": machine.load()}
        tries: dict[str, list[dict]] = {name: [] for name in routes}
        for _ in range(rounds):
            for name, route in routes.items():
                phase = _checked_phase(
                    name, route, out_dir=out_dir, n=n, keys=keys, batch=batch, workers=workers
                )
                tries[name].append(phase)
                services.clear_bench_rows(ids)
                recorder.clear(out_dir, name)
        for name, phases in tries.items():
            result[name] = {**max(phases, key=lambda p: p["rate"]), "rounds": phases}
            result[name]["order"] = _worst(p["order"] for p in phases)
        result["ratio"] = result[ORDERED]["rate"] / result[UNORDERED]["rate"]
        result["load_after"] = machine.load()
        return result
    finally:
        workers.stop()
        services.clear_bench_rows(ids)


def _route(name: str, queue: str, *, ordered: bool) -> Route:
    """The bench's route for ``name`` (bench.eh's), ordered by ``{data.key}`` or not."""
    route = eh._route(name, queue)
    route.ordering_key = "{data.key}" if ordered else ""
    route.save()
    return route


def _checked_phase(name: str, route: Route, *, out_dir: str, workers: services.Workers, **sizes: int) -> dict:
    phase = _phase(name, route, workers=workers, **sizes)
    phase["order"] = check_order(recorder.read(out_dir, name))
    phase["load"] = machine.load()
    return phase


def _phase(name: str, route: Route, *, n: int, keys: int, batch: int, workers: services.Workers) -> dict:
    started_at = timezone.now()
    began = time.monotonic()
    for first in range(0, n, batch):
        emit_many(
            [
                {"type": name, "data": {"key": i % keys, "n": i // keys}}
                for i in range(first, min(first + batch, n))
            ]
        )
    background.flush(timeout=60)
    emitted = time.monotonic() - began
    finished = eh._wait_succeeded(route, n, workers)
    seconds = (finished - started_at).total_seconds()
    return {"seconds": seconds, "rate": stats.rate(n, seconds), "emit_seconds": emitted}


def _worst(checks) -> dict:
    checks = list(checks)
    return {key: min(c[key] for c in checks) for key in checks[0]}


def check_order(rows: list[list[float]]) -> dict:
    """Per key: were its runs in emit order (n ascending by start) and one at a time (no overlap)?"""
    lines: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    for key, n, started, finished in rows:
        lines[int(key)].append((started, finished, int(n)))
    in_order = one_at_a_time = 0
    for line in lines.values():
        line.sort()
        in_order += [n for _, _, n in line] == sorted(n for _, _, n in line)
        one_at_a_time += all(b[0] >= a[1] for a, b in zip(line, line[1:], strict=False))
    return {"keys": len(lines), "runs": len(rows), "in_order": in_order, "one_at_a_time": one_at_a_time}


def render(result: dict) -> str:
    """The phase's lines for the printed report."""
    out = [
        f"ordering per key - {result['n']} events over {result['keys']} keys, batches of {result['batch']}"
    ]
    for name in (UNORDERED, ORDERED):
        phase, order = result[name], result[name]["order"]
        label = "ordered  " if name == ORDERED else "unordered"
        keys = order["keys"]
        out.append(
            f"  {label} route: {phase['rate']:,.0f} events/s end to end; keys in emit order "
            f"{order['in_order']}/{keys}, one at a time {order['one_at_a_time']}/{keys}"
        )
    out.append(f"  ordered / unordered throughput: {result['ratio']:.2f} (target >= 0.5)")
    return "\n".join(out)
