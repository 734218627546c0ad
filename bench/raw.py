"""Raw Dramatiq phases: confirmed sends, a worker draining them, latency at a fixed rate."""

import time
from pathlib import Path

from bench import pacing, raw_app, recorder, services, stats
from bench.progress import Progress


def run(
    *, n: int, rate: float, seconds: float, processes: int, threads: int, queue: str, out_dir: str, log: Path
) -> dict:
    """Send ``n`` messages (no worker running), drain them, then measure latency at ``rate``."""
    broker = raw_app.make_broker()
    noop, latency = raw_app.declare(broker, queue)
    broker.declare_queue(queue, ensure=True)  # declare (and connect) outside the timed loop
    watcher = services.QueueWatcher()
    workers = None
    try:
        result = {"load_before": stats.load()}
        sending = Progress("raw Dramatiq: send", n, unit="messages")
        started = time.monotonic()
        for i in range(n):
            noop.send(i)
            sending.update(i + 1)
        send_s = time.monotonic() - started
        sending.finish()
        result["send"] = {"count": n, "seconds": send_s, "rate": stats.rate(n, send_s)}
        workers = services.raw_workers(queue, processes, threads, out_dir, log)
        result["drain"] = _drain(watcher, queue, n, workers)
        workers.wait_consuming(queue, processes)
        pacing_phase = Progress("raw Dramatiq: latency at a fixed rate", int(rate * seconds), unit="messages")
        result["latency_pacing"] = pacing.at_rate(
            lambda i: latency.send(time.time()), rate=rate, seconds=seconds, progress=pacing_phase.update
        )
        pacing_phase.finish()
        _wait_recorded(out_dir, int(rate * seconds), workers)
        rows = recorder.read(out_dir, "raw")
        result["latency_start"] = stats.latency_summary([r[0] for r in rows])
        result["latency_done"] = stats.latency_summary([r[1] for r in rows])
        result["load_after"] = stats.load()
        return result
    finally:
        if workers is not None:
            workers.stop()
        watcher.close()
        broker.close()


def _drain(watcher: services.QueueWatcher, queue: str, n: int, workers: services.Workers) -> dict:
    """Time from the first message taken off the queue to the queue being empty.

    RabbitMQ's ready count leaves out the few messages the workers prefetched
    (2 per thread); at the end those are milliseconds of work.
    """
    deadline = time.monotonic() + 120 + n / 100
    first = None
    draining = Progress("raw Dramatiq: workers drain the queue", n, unit="messages")
    while True:
        ready, _ = watcher.counts(queue)
        draining.update(n - ready)
        now = time.monotonic()
        if first is None and ready < n:
            first = now
        if ready == 0:
            draining.finish()
            seconds = now - first
            return {"count": n, "seconds": seconds, "rate": stats.rate(n, seconds)}
        if now > deadline or workers.process.poll() is not None:
            raise RuntimeError(f"raw workers did not drain {queue}; see {workers.log}")
        time.sleep(0.005)


def _wait_recorded(out_dir: str, count: int, workers: services.Workers, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(recorder.read(out_dir, "raw")) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"raw latency messages were not all processed; see {workers.log}")
        time.sleep(0.1)
