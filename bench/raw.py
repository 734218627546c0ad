"""Raw Dramatiq phases: confirmed sends, a worker draining them, latency at fixed rates."""

import time
from pathlib import Path

from bench import machine, pacing, raw_app, recorder, services, stats
from bench.progress import Progress


def run(
    *,
    n: int,
    rates: list[float],
    seconds: float,
    processes: int,
    threads: int,
    queue: str,
    out_dir: str,
    log: Path,
) -> dict:
    """One round: send ``n`` messages (no worker running), drain them, then latency at each rate."""
    broker = raw_app.make_broker()
    noop, latency = raw_app.declare(broker, queue)
    broker.declare_queue(queue, ensure=True)  # declare (and connect) outside the timed loop
    watcher = services.QueueWatcher()
    workers = None
    try:
        result = {"load_before": machine.load()}
        progress = Progress("raw send", n)
        with machine.CpuDuring() as cpu:
            started = time.monotonic()
            for i in range(n):
                noop.send(i)
                if i % 256 == 0:
                    progress.update(i)
            send_s = time.monotonic() - started
        progress.update(n)
        progress.finish()
        result["send"] = {"count": n, "seconds": send_s, "rate": stats.rate(n, send_s), "cpu": cpu.usage}
        workers = services.raw_workers(queue, processes, threads, out_dir, log)
        with machine.CpuDuring() as cpu:
            result["drain"] = _drain(watcher, queue, n, workers)
        result["drain"]["cpu"] = cpu.usage
        workers.wait_consuming(queue, processes)
        result["latency"] = {_key(rate): _latency(latency, rate, seconds, out_dir, workers) for rate in rates}
        result["load_after"] = machine.load()
        return result
    finally:
        if workers is not None:
            workers.stop()
        watcher.close()
        broker.close()


def _key(rate: float) -> str:
    return f"{rate:g}"


def _latency(actor, rate: float, seconds: float, out_dir: str, workers: services.Workers) -> dict:
    phase = f"-{_key(rate)}"
    with machine.CpuDuring() as cpu:
        pacing_result = pacing.at_rate(
            lambda i: actor.send(time.time(), phase),
            rate=rate,
            seconds=seconds,
            label=f"raw latency at {rate:g}/s",
        )
    _wait_recorded(out_dir, f"raw{phase}", pacing_result["sent"], workers)
    rows = recorder.read(out_dir, f"raw{phase}")
    return {
        "pacing": pacing_result,
        "cpu": cpu.usage,
        "start": stats.latency_summary([r[0] for r in rows]),
        "done": stats.latency_summary([r[1] for r in rows]),
    }


def _drain(watcher: services.QueueWatcher, queue: str, n: int, workers: services.Workers) -> dict:
    """Time from the first message taken off the queue to the queue being empty.

    RabbitMQ's ready count leaves out the few messages the workers prefetched
    (2 per thread); at the end those are milliseconds of work.
    """
    deadline = time.monotonic() + 120 + n / 100
    first = None
    progress = Progress("raw drain", n)
    while True:
        ready, _ = watcher.counts(queue)
        now = time.monotonic()
        if first is None and ready < n:
            first = now
        progress.update(n - ready)
        if ready == 0:
            seconds = now - first
            progress.finish()
            return {"count": n, "seconds": seconds, "rate": stats.rate(n, seconds)}
        if now > deadline or workers.process.poll() is not None:
            raise RuntimeError(f"raw workers did not drain {queue}; see {workers.log}")
        time.sleep(0.005)


def _wait_recorded(
    out_dir: str, kind: str, count: int, workers: services.Workers, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while len(recorder.read(out_dir, kind)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"raw latency messages were not all processed; see {workers.log}")
        time.sleep(0.1)
