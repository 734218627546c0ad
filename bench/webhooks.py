"""Webhook phases: eventhub's webhook deliveries per second against a plain loop of ``requests`` posts.

Both post the same bodies (the envelopes eventhub sends, signed the same way) to
the same local receiver (bench/receiver.py), from the same number of processes
and threads. The baseline is ``bench.post_loop``: per process, T threads each with
a keep-alive ``requests.Session``. eventhub's figure is a drain: N events are
emitted to a webhook route while no worker consumes its queue, then
``eventhub_worker`` starts and delivers them; timed from the first delivery
started to the last one recorded.

Phases: a fast receiver (answers at once), and one answering after 200 ms, with
the run's threads and with twice as many: with a slow endpoint, throughput must
grow with the threads (threads / 0.2 s at best), not stall.
"""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db.models import Max, Min
from django.utils import timezone

from bench import machine, services, stats
from bench.progress import Progress, say
from eventhub import broker as brokers
from eventhub import emit_many
from eventhub.destinations.secrets import signing_secrets
from eventhub.destinations.signing import signed_headers
from eventhub.models import Delivery, Event, EventType, Route
from eventhub.outbox import background

HOOK = "bench.hook"
# name: (receiver delay in seconds, threads per process as a multiple of --threads)
PHASES = {"fast": (0.0, 1), "200 ms": (0.2, 1), "200 ms, 2x threads": (0.2, 2)}
SLOW_SECONDS_OF_WORK = 4.0


def run(*, n: int, processes: int, threads: int, queue: str, out_dir: Path) -> dict:
    """Every webhook phase once: the baseline loop, then eventhub, against one receiver each."""
    route = _route(queue)
    brokers.get_broker().declare_queue(queue, ensure=True)
    result = {}
    try:
        for name, (delay, factor) in PHASES.items():
            per_process = threads * factor
            count = n if not delay else int(processes * per_process / delay * SLOW_SECONDS_OF_WORK)
            with Receiver(delay, out_dir / f"receiver-{len(result)}.log") as receiver:
                say(f"  webhooks, {name}: port {receiver.port}, {processes} x {per_process} threads")
                url = f"http://127.0.0.1:{receiver.port}/hook"
                items = _bodies(route, count)
                with machine.CpuDuring() as cpu:
                    baseline = _baseline(items, url, processes, per_process, out_dir)
                baseline["cpu"] = cpu.usage
                hub = _eventhub(route, url, count, processes, per_process, queue, out_dir)
                result[name] = {
                    "count": count,
                    "delay_s": delay,
                    "threads": processes * per_process,
                    "best_possible_rate": processes * per_process / delay if delay else None,
                    "requests": baseline,
                    "eventhub": hub,
                    "received": receiver.count(),
                }
    finally:
        services.clear_bench_rows([route.pk])
    return result


class Receiver:
    """bench.receiver in a process of its own, for the length of a ``with`` block (``extra``: its options)."""

    def __init__(self, delay: float, log: Path, *extra: str) -> None:
        self.delay, self.log, self.extra = delay, log, extra
        self.process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "Receiver":
        with open(self.log, "ab") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.receiver", "--delay", str(self.delay), *self.extra],
                cwd=services.ROOT,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self.port = int(self.process.stdout.readline())
        return self

    def count(self) -> int:
        """POSTs the receiver has answered so far."""
        import requests

        return int(requests.get(f"http://127.0.0.1:{self.port}/count", timeout=5).text)

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _route(queue: str) -> Route:
    event_type, _ = EventType.objects.update_or_create(name=HOOK, defaults={"active": True, "schema": None})
    route, _ = Route.objects.update_or_create(
        name=f"route-{HOOK}",
        defaults={
            "event_type": event_type,
            "destination_kind": Route.Kind.WEBHOOK,
            "target": "http://127.0.0.1:9/unset",
            "queue": queue,
            "enabled": True,
            "filter": {},
            "max_attempts": 1,
        },
    )
    return route


def _bodies(route: Route, count: int) -> list[dict]:
    """The requests eventhub's webhook destination would make for ``count`` events, built the same way."""
    items = []
    for i in range(count):
        event = Event(id=uuid.uuid4(), type=HOOK, source="/eventhub", time=timezone.now(), data={"i": i})
        envelope = event.envelope
        body = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
        headers = {"content-type": "application/json", "user-agent": "eventhub-webhook/1"}
        # eventhub's webhook-id is "<event id>.<delivery id>": the same length as this stand-in.
        msg_id = f"{envelope['id']}.{route.pk}"
        headers.update(signed_headers(secrets=signing_secrets(route), msg_id=msg_id, body=body))
        items.append({"body": body.decode(), "headers": headers})
    return items


def _baseline(items: list[dict], url: str, processes: int, threads: int, out_dir: Path) -> dict:
    """``processes`` post_loop processes of ``threads`` threads, started together, sharing the requests."""
    count = len(items)
    files = []
    for p in range(processes):
        path = out_dir / f"requests-{p}.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in items[p::processes]))
        files.append(path)
    start_at = time.time() + 1.0 + 0.2 * processes  # after every process has imported requests
    argv = [sys.executable, "-m", "bench.post_loop", url]
    loops = [
        subprocess.Popen(
            [*argv, str(f), "--threads", str(threads), "--start-at", str(start_at)],
            cwd=services.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    reports = [json.loads(loop.communicate(timeout=600)[0]) for loop in loops]
    seconds = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    ok = sum(r["ok"] for r in reports)
    if ok != count:
        raise RuntimeError(f"the requests loop got {ok} answers of 2xx for {count} posts")
    say(f"  requests loop: {count:,} posts in {seconds:.1f} s, {stats.rate(count, seconds):,.0f}/s")
    return {"seconds": seconds, "rate": stats.rate(count, seconds)}


def _eventhub(
    route: Route, url: str, count: int, processes: int, threads: int, queue: str, out_dir: Path
) -> dict:
    """Emit ``count`` events to the webhook route with no worker running, then time the workers' drain."""
    services.clear_bench_rows([route.pk])
    Route.objects.filter(pk=route.pk).update(target=url)
    for first in range(0, count, 500):
        emit_many([{"type": HOOK, "data": {"i": i}} for i in range(first, min(first + 500, count))])
    if not background.flush(timeout=60):
        raise RuntimeError("the background sender did not send the webhook events within 60 s")
    log = out_dir / "eventhub-webhook-workers.log"
    workers = services.eventhub_workers(queue, processes, threads, str(out_dir), log)
    try:
        with machine.CpuDuring() as cpu:
            _wait_delivered(route, count, workers, log)
    finally:
        workers.stop()
    span = Delivery.objects.filter(route=route).aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"seconds": seconds, "rate": stats.rate(count, seconds), "cpu": cpu.usage}


def _wait_delivered(route: Route, count: int, workers: services.Workers, log: Path) -> None:
    deliveries = Delivery.objects.filter(route=route)
    progress = Progress("eventhub webhook deliveries", count)
    deadline = time.monotonic() + 120 + count / 20
    while (done := deliveries.filter(status=Delivery.Status.SUCCEEDED).count()) < count:
        failed = deliveries.filter(status__in=[Delivery.Status.DEAD, Delivery.Status.RETRYING]).first()
        if failed is not None:
            raise RuntimeError(f"webhook delivery {failed.pk} failed: {failed.last_error}")
        if time.monotonic() > deadline or workers.process.poll() is not None:
            raise RuntimeError(f"eventhub workers did not deliver {count} webhooks; see {log}")
        progress.update(done)
        time.sleep(0.5)
    progress.update(count)
    progress.finish()
