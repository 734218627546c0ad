"""eventhub phases: emit one at a time (then drain) and in batches (end to end), latency at a fixed rate."""

import time
from datetime import datetime
from pathlib import Path

from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from bench import machine, pacing, recorder, services, stats
from bench.progress import Progress
from bench.upkeep import AutovacuumStandIn
from eventhub import broker as brokers
from eventhub import emit, emit_many
from eventhub.models import Delivery, EventType, Route
from eventhub.outbox import background, route_table

NOOP, LATENCY = "bench.noop", "bench.latency"


def run(
    *,
    n: int,
    n_single: int,
    batch: int,
    rates: list[float],
    seconds: float,
    processes: int,
    threads: int,
    queue: str,
    out_dir: str,
    log: Path,
) -> dict:
    """One round of every eventhub phase; the workers start after the first, as raw Dramatiq's do."""
    routes = {name: _route(name, queue) for name in (NOOP, LATENCY)}
    route_table.refresh_in_background()  # as config/wsgi.py does in a web process
    route_ids = [r.pk for r in routes.values()]
    services.clear_bench_rows(route_ids)
    brokers.get_broker().declare_queue(queue, ensure=True)
    workers = None
    try:
        result = {"load_before": machine.load()}
        with AutovacuumStandIn() as upkeep:
            result["autovacuum_stand_in"] = upkeep.active
            # Like raw Dramatiq's send phase: no worker running while emitting.
            result["single"] = {
                "count": n_single,
                "batch": 1,
                "emit": _emit(n_single, 1, "emit one at a time"),
            }
            workers = services.eventhub_workers(queue, processes, threads, out_dir, log)
            workers.wait_consuming(queue, processes)
            result["single"]["drain"] = _drain(routes[NOOP], n_single, workers)
            services.clear_bench_rows(route_ids)
            # As in production: emitting while the workers drain, on the same cores.
            result["single_busy"] = _throughput(
                routes[NOOP], n_single, 1, workers, "emit one at a time, workers draining"
            )
            services.clear_bench_rows(route_ids)
            result["batched"] = _throughput(
                routes[NOOP], n, batch, workers, f"emit_many of {batch}, workers draining"
            )
            services.clear_bench_rows(route_ids)
        # Outside the stand-in: its ANALYZE rounds (about a second of PostgreSQL's work every 5 s)
        # lined up with slow latency samples, and a latency phase adds too few rows to need them;
        # the tables are analysed between phases (clear_bench_rows).
        result["latency"] = {}
        for rate in rates:
            result["latency"][f"{rate:g}"] = _latency(routes[LATENCY], rate, seconds, out_dir, workers)
            services.clear_bench_rows(route_ids)
        result["load_after"] = machine.load()
        return result
    finally:
        if workers is not None:
            workers.stop()
        services.clear_bench_rows(route_ids)


def _route(name: str, queue: str) -> Route:
    """The bench's one enabled route for event type ``name``, to the handler of that name."""
    event_type, _ = EventType.objects.update_or_create(name=name, defaults={"active": True, "schema": None})
    Route.objects.filter(event_type=event_type).exclude(name=f"route-{name}").update(enabled=False)
    route, _ = Route.objects.update_or_create(
        name=f"route-{name}",
        defaults={
            "event_type": event_type,
            "destination_kind": Route.Kind.HANDLER,
            "target": name,
            "queue": queue,
            "enabled": True,
            "filter": {},
        },
    )
    return route


def _emit(n: int, batch: int, label: str) -> dict:
    """Emit ``n`` events (``batch`` per emit_many call; 1 means emit() each in its own transaction).

    Timed until the last message is confirmed by RabbitMQ, as raw Dramatiq's confirmed
    sends are: emit() returns after its commit and sends in the background.
    """
    progress = Progress(label, n)
    with machine.CpuDuring() as cpu:
        started = time.monotonic()
        _emit_loop(n, batch, progress)
        progress.finish(note="emitted; waiting for the confirms")
        if not background.flush(timeout=60):
            raise RuntimeError("the background sender did not send every emitted event within 60 s")
        seconds = time.monotonic() - started
    return {"seconds": seconds, "rate": stats.rate(n, seconds), "cpu": cpu.usage}


def _emit_loop(n: int, batch: int, progress: Progress) -> None:
    if batch == 1:
        for i in range(n):
            emit(NOOP, data={"i": i})
            if i % 256 == 0:
                progress.update(i)
    else:
        for first in range(0, n, batch):
            emit_many([{"type": NOOP, "data": {"i": i}} for i in range(first, min(first + batch, n))])
            progress.update(first)
    progress.update(n)


def _throughput(route: Route, n: int, batch: int, workers: services.Workers, label: str) -> dict:
    """Emit ``n`` events with the workers running; the emit rate and the end-to-end rate."""
    started_at = timezone.now()
    with machine.CpuDuring() as cpu:
        emitted = _emit(n, batch, label)
        finished = _wait_succeeded(route, n, workers)
    e2e_s = (finished - started_at).total_seconds()
    return {
        "count": n,
        "batch": batch,
        "emit": emitted,
        "end_to_end": {"seconds": e2e_s, "rate": stats.rate(n, e2e_s), "cpu": cpu.usage},
    }


def _drain(route: Route, n: int, workers: services.Workers) -> dict:
    """Workers started on a full queue: from the first delivery started to the last one recorded."""
    with machine.CpuDuring() as cpu:
        finished = _wait_succeeded(route, n, workers)
    first = Delivery.objects.filter(route=route).aggregate(first=Min("started_at"))["first"]
    seconds = (finished - first).total_seconds()
    return {"seconds": seconds, "rate": stats.rate(n, seconds), "cpu": cpu.usage}


def _wait_succeeded(route: Route, n: int, workers: services.Workers) -> datetime:
    """Wait until ``n`` deliveries of ``route`` succeeded; returns when the last was recorded."""
    deadline = time.monotonic() + 120 + n / 50
    deliveries = Delivery.objects.filter(route=route)
    if deliveries.count() != n:
        raise RuntimeError(f"expected {n} deliveries, found {deliveries.count()}")
    progress = Progress(f"deliveries of {route.event_type.name} recorded", n)
    polls = 0
    # Index range lookups per poll on (route, status), which touch only unfinished rows: the poll must
    # not load the database it measures (a "not succeeded" filter would walk every finished row).
    unfinished = deliveries.filter(status__in=[s for s in Delivery.Status if s != Delivery.Status.SUCCEEDED])
    while unfinished.exists():
        failed = deliveries.filter(status__in=[Delivery.Status.DEAD, Delivery.Status.RETRYING]).first()
        if failed is not None:
            raise RuntimeError(f"delivery {failed.pk} failed: {failed.last_error}")
        if time.monotonic() > deadline or workers.process.poll() is not None:
            raise RuntimeError(f"eventhub workers did not finish {n} deliveries; see {workers.log}")
        polls += 1
        if polls % 4 == 0:  # every 2 s: counting the unfinished rows walks them
            progress.update(n - unfinished.count())
        time.sleep(0.5)  # the end time is the last finished_at, not when a poll sees it
    progress.update(n)
    progress.finish()
    return deliveries.aggregate(last=Max("finished_at"))["last"]


def _latency(route: Route, rate: float, seconds: float, out_dir: str, workers: services.Workers) -> dict:
    """Emit at ``rate``, one event per transaction; latency to handler start and to outcome recorded."""
    phase = f"-{rate:g}"
    with machine.CpuDuring() as cpu:
        pacing_result = pacing.at_rate(
            lambda i: emit(LATENCY, data={"t": time.time(), "p": phase}),
            rate=rate,
            seconds=seconds,
            label=f"eventhub latency at {rate:g}/s",
            on_thread_exit=lambda: connection.close(),  # each pacing thread's own connection
        )
    count = pacing_result["sent"]
    _wait_succeeded(route, count, workers)
    rows = Delivery.objects.filter(route=route).values_list("finished_at", "event__data")
    recorded = [finished.timestamp() - data["t"] for finished, data in rows]
    started = [r[0] for r in recorder.read(out_dir, f"eventhub{phase}")]
    return {
        "pacing": pacing_result,
        "cpu": cpu.usage,
        "start": stats.latency_summary(started),
        "done": stats.latency_summary(recorded),
    }
