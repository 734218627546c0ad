"""The benchmark's eventhub handlers (autodiscovered like any app's consumers module)."""

import time

from bench import recorder
from eventhub import consumer


@consumer("bench.noop")
def noop(envelope: dict) -> None:
    """Do nothing: the throughput phases measure eventhub, not the handler."""


@consumer("bench.latency")
def latency(envelope: dict) -> None:
    """Record how long after emit() was called this handler started (per latency phase)."""
    data = envelope["data"]
    recorder.record(f"eventhub{data.get('p', '')}", time.time() - data["t"])
