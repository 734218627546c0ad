"""The benchmark's eventhub handlers (autodiscovered like any app's consumers module)."""

import time

from bench import recorder
from eventhub import consumer


@consumer("bench.noop")
def noop(envelope: dict) -> None:
    """Do nothing: the throughput phases measure eventhub, not the handler."""


@consumer("bench.latency")
def latency(envelope: dict) -> None:
    """Record how long after emit() was called the handler started (per latency phase), when, which event."""
    data = envelope["data"]
    now = time.time()
    recorder.record(f"eventhub{data.get('p', '')}", now - data["t"], now, data.get("i", -1))


@consumer("bench.keyed")
@consumer("bench.ordered")
def keyed(envelope: dict) -> None:
    """Record (key, n, start, end) for the ordering check; the same for the ordered and unordered route."""
    started = time.time()
    data = envelope["data"]
    recorder.record(envelope["type"], data["key"], data["n"], started, time.time())
