"""Timestamps of the periodic work in every process of a run, to line slow latency samples up against.

With ``BENCH_TRACE_DIR`` set, each process (the harness, every worker process,
the upkeep process) appends one JSON line per event to ``trace-<pid>.jsonl``
there: garbage collections, reloads of the per-process route and hook copies,
the background sender's publishing, confirm waits and marking queued, the
worker's combined write batches and the upkeep rounds, each with its wall-clock
start and duration. Only the bench
installs this (bench/apps.py), by wrapping those functions: eventhub itself is
not changed. Read the files with :func:`read`.
"""

import functools
import gc
import json
import os
import threading
import time

TRACE_ENV = "BENCH_TRACE_DIR"
GC_MIN_SECONDS = 0.0005  # shorter collections are not worth a line

_lock = threading.Lock()
_handle = None
_gc_started: dict[int, float] = {}


def enabled() -> bool:
    return bool(os.environ.get(TRACE_ENV))


def event(kind: str, started: float, seconds: float, **extra: object) -> None:
    """Append one event (``started`` is wall-clock time.time())."""
    global _handle
    line = json.dumps({"pid": os.getpid(), "kind": kind, "t": started, "s": seconds, **extra}) + "\n"
    with _lock:
        if _handle is None or getattr(_handle, "pid", None) != os.getpid():
            path = os.path.join(os.environ[TRACE_ENV], f"trace-{os.getpid()}.jsonl")
            _handle = open(path, "a", buffering=1)  # noqa: SIM115 - kept open for the process's life
            _handle.pid = os.getpid()
        _handle.write(line)


def _timed(kind: str, function, describe=None):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started, clock = time.time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            extra = describe(*args, **kwargs) if describe else {}
            event(kind, started, time.perf_counter() - clock, thread=threading.current_thread().name, **extra)

    return wrapper


def _on_gc(phase: str, info: dict) -> None:
    thread = threading.get_ident()
    if phase == "start":
        _gc_started[thread] = time.perf_counter()
        return
    began = _gc_started.pop(thread, None)
    if began is None:
        return
    seconds = time.perf_counter() - began
    if seconds >= GC_MIN_SECONDS:
        event(
            "gc", time.time() - seconds, seconds, generation=info["generation"], collected=info["collected"]
        )


def install() -> None:
    """Wrap the periodic work of this process (once; only when BENCH_TRACE_DIR is set)."""
    if not enabled() or getattr(install, "done", False):
        return
    install.done = True
    gc.callbacks.append(_on_gc)
    from eventhub.broker import confirms
    from eventhub.db import process_cache
    from eventhub.outbox import background, send
    from eventhub.worker import upkeep, writes

    cache = process_cache.ProcessCache
    cache._reload = _timed("cache reload", cache._reload, lambda self: {"name": self.name})
    cache._background_load = _timed(
        "background reload", cache._background_load, lambda self: {"name": self.name}
    )
    background.start_send = _timed("publish", background.start_send, lambda items: {"n": len(items)})
    publisher = confirms.ConfirmingPublisher
    publisher.wait = _timed(
        "confirm wait", publisher.wait, lambda self, batch, **kw: {"n": len(batch.messages)}
    )
    send.mark_queued = _timed("mark queued", send.mark_queued, lambda ids: {"n": len(ids)})

    def batch_kind(batch) -> dict:
        outcomes = sum(isinstance(r, writes.OutcomeRequest) for r in batch)
        return {"n": len(batch), "name": "with outcomes" if outcomes else "claims only"}

    for combiner in (writes._claims, writes._outcomes):
        combiner.run_batch = _timed("write batch", combiner.run_batch, batch_kind)
    upkeep._round = _timed("upkeep round", upkeep._round)


def read(directory: str) -> list[dict]:
    """Every event of every process, oldest first."""
    events = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("trace-") and name.endswith(".jsonl"):
            with open(os.path.join(directory, name)) as handle:
                events.extend(json.loads(line) for line in handle if line.strip())
    return sorted(events, key=lambda e: e["t"])
