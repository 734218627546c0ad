"""Handlers for tests that run workers in other processes (and so can't register their own)."""

import os
import time

from eventhub import consumer
from tests.testapp.models import Effect, OrderedRun, Switch


@consumer("testapp.record")
def record(envelope: dict) -> None:
    """Write one Effect row per run."""
    Effect.objects.create(event_id=envelope["id"], handler="testapp.record", pid=os.getpid())


@consumer("testapp.slow")
def slow(envelope: dict) -> None:
    """Sleep for data.sleep seconds, then record; lets a test kill a worker mid-handler."""
    # Short sleeps, so that a time limit (raised between bytecodes) interrupts it promptly.
    deadline = time.monotonic() + float((envelope.get("data") or {}).get("sleep", 1))
    while time.monotonic() < deadline:
        time.sleep(0.02)
    Effect.objects.create(event_id=envelope["id"], handler="testapp.slow", pid=os.getpid())


@consumer("testapp.flaky")
def flaky(envelope: dict) -> None:
    """Fail while the switch "broken" is on, then record."""
    if Switch.objects.filter(name="broken", on=True).exists():
        raise RuntimeError("the downstream system is broken")
    Effect.objects.create(event_id=envelope["id"], handler="testapp.flaky", pid=os.getpid())


@consumer("testapp.ordered")
def ordered(envelope: dict) -> None:
    """Record (key, n) with its start and end; fail while "broken" is on for events marked fail."""
    data = envelope["data"]
    started = time.time()
    if data.get("fail") and Switch.objects.filter(name="broken", on=True).exists():
        raise RuntimeError("the downstream system is broken")
    time.sleep(float(data.get("sleep", 0)))
    OrderedRun.objects.create(
        key=data["key"], n=data["n"], pid=os.getpid(), started=started, finished=time.time()
    )
