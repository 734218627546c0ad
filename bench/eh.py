"""eventhub phases: emit one at a time (then drain) and in batches (end to end), latency at a fixed rate."""

import time
from datetime import datetime
from pathlib import Path

from django.db.models import Max, Min
from django.utils import timezone

from bench import pacing, recorder, services, stats
from bench.progress import Progress
from bench.upkeep import AutovacuumStandIn
from eventhub import broker as brokers
from eventhub import emit, emit_many
from eventhub.models import Delivery, EventType, Route
from eventhub.outbox import background

NOOP, LATENCY = "bench.noop", "bench.latency"


def run(
    *,
    n: int,
    n_single: int,
    batch: int,
    rate: float,
    seconds: float,
    processes: int,
    threads: int,
    queue: str,
    out_dir: str,
    log: Path,
) -> dict:
    """All eventhub phases; the workers start after the first, as raw Dramatiq's do after its sends."""
    routes = {name: _route(name, queue) for name in (NOOP, LATENCY)}
    route_ids = [r.pk for r in routes.values()]
    services.clear_bench_rows(route_ids)
    brokers.get_broker().declare_queue(queue, ensure=True)
    workers = None
    try:
        result = {"load_before": stats.load()}
        with AutovacuumStandIn() as upkeep:
            result["autovacuum_stand_in"] = upkeep.active
            # Like raw Dramatiq's send phase: no worker running while emitting.
            result["single"] = {"count": n_single, "batch": 1, "emit": _emit(n_single, 1)}
            workers = services.eventhub_workers(queue, processes, threads, out_dir, log)
            workers.wait_consuming(queue, processes)
            result["single"]["drain"] = _drain(routes[NOOP], n_single, workers)
            services.clear_bench_rows(route_ids)
            # As in production: emitting while the workers drain, on the same cores.
            result["single_busy"] = _throughput(routes[NOOP], n_single, 1, workers)
            services.clear_bench_rows(route_ids)
            result["batched"] = _throughput(routes[NOOP], n, batch, workers)
            services.clear_bench_rows(route_ids)
            result.update(_latency(routes[LATENCY], rate, seconds, out_dir, workers))
        result["load_after"] = stats.load()
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


def _emit(n: int, batch: int) -> dict:
    """Emit ``n`` events (``batch`` per emit_many call; 1 means emit() each in its own transaction).

    Timed until the last message is confirmed by RabbitMQ, as raw Dramatiq's confirmed
    sends are: emit() returns after its commit and sends in the background.
    """
    emitting = Progress(f"eventhub: emit {'one at a time' if batch == 1 else f'in batches of {batch}'}", n)
    started = time.monotonic()
    if batch == 1:
        for i in range(n):
            emit(NOOP, data={"i": i})
            emitting.update(i + 1)
    else:
        for first in range(0, n, batch):
            emit_many([{"type": NOOP, "data": {"i": i}} for i in range(first, min(first + batch, n))])
            emitting.update(min(first + batch, n))
    if not background.flush(timeout=60):
        raise RuntimeError("the background sender did not send every emitted event within 60 s")
    seconds = time.monotonic() - started
    emitting.finish()
    return {"seconds": seconds, "rate": stats.rate(n, seconds)}


def _throughput(route: Route, n: int, batch: int, workers: services.Workers) -> dict:
    """Emit ``n`` events with the workers running; the emit rate and the end-to-end rate."""
    started_at = timezone.now()
    emitted = _emit(n, batch)
    finished = _wait_succeeded(route, n, workers)
    e2e_s = (finished - started_at).total_seconds()
    return {
        "count": n,
        "batch": batch,
        "emit": emitted,
        "end_to_end": {"seconds": e2e_s, "rate": stats.rate(n, e2e_s)},
    }


def _drain(route: Route, n: int, workers: services.Workers) -> dict:
    """Workers started on a full queue: from the first delivery started to the last one recorded."""
    finished = _wait_succeeded(route, n, workers)
    first = Delivery.objects.filter(route=route).aggregate(first=Min("started_at"))["first"]
    seconds = (finished - first).total_seconds()
    return {"seconds": seconds, "rate": stats.rate(n, seconds)}


def _wait_succeeded(route: Route, n: int, workers: services.Workers) -> datetime:
    """Wait until ``n`` deliveries of ``route`` succeeded; returns when the last was recorded."""
    deadline = time.monotonic() + 120 + n / 50
    deliveries = Delivery.objects.filter(route=route)
    if deliveries.count() != n:
        raise RuntimeError(f"expected {n} deliveries, found {deliveries.count()}")
    # Index range lookups per poll on (route, status), which touch only unfinished rows: the poll must
    # not load the database it measures (a "not succeeded" filter would walk every finished row).
    unfinished = deliveries.filter(status__in=[s for s in Delivery.Status if s != Delivery.Status.SUCCEEDED])
    waiting = Progress("eventhub: workers deliver", n, unit="deliveries")
    report = waiting.counting(lambda: n - unfinished.count())  # counted only when a line is due
    while unfinished.exists():
        report()
        failed = deliveries.filter(status__in=[Delivery.Status.DEAD, Delivery.Status.RETRYING]).first()
        if failed is not None:
            raise RuntimeError(f"delivery {failed.pk} failed: {failed.last_error}")
        if time.monotonic() > deadline or workers.process.poll() is not None:
            raise RuntimeError(f"eventhub workers did not finish {n} deliveries; see {workers.log}")
        time.sleep(0.5)  # the end time is the last finished_at, not when a poll sees it
    waiting.finish()
    return deliveries.aggregate(last=Max("finished_at"))["last"]


def _latency(route: Route, rate: float, seconds: float, out_dir: str, workers: services.Workers) -> dict:
    """Emit at ``rate``, one event per transaction; latency to handler start and to outcome recorded."""
    pacing_phase = Progress("eventhub: latency at a fixed rate", int(rate * seconds))
    pacing_result = pacing.at_rate(
        lambda i: emit(LATENCY, data={"t": time.time()}),
        rate=rate,
        seconds=seconds,
        progress=pacing_phase.update,
    )
    pacing_phase.finish()
    count = pacing_result["sent"]
    _wait_succeeded(route, count, workers)
    rows = Delivery.objects.filter(route=route).values_list("finished_at", "event__data")
    recorded = [finished.timestamp() - data["t"] for finished, data in rows]
    started = [r[0] for r in recorder.read(out_dir, "eventhub")]
    return {
        "latency_pacing": pacing_result,
        "latency_start": stats.latency_summary(started),
        "latency_done": stats.latency_summary(recorded),
    }
