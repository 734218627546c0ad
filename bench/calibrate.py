"""Calibration figures: what the machine's parts can do on their own, measured in the same run.

Every figure of the benchmark is bound by one of a few resources: a CPU core
(Python and PostgreSQL executing), PostgreSQL's commit (the WAL flush to disk),
or RabbitMQ's publisher confirm (a round trip, plus its own disk write for a
persistent message). Machines differ in each by different factors: one with the
same CPUs and a slower disk has slower commits but the same Python. These
figures say how this machine compares, so that a change in a ratio between two
machines can be traced to the resource that changed (docs/benchmark.md).
"""

import json
import time
import uuid
from collections.abc import Callable

import pika

from bench import stats

PROBE_TABLE = "bench_commit_probe"


def _timed_loop(call: Callable[[], None], *, seconds: float, limit: int = 100_000) -> list[float]:
    """Call ``call`` repeatedly for about ``seconds``; each call's duration in seconds."""
    samples = []
    deadline = time.perf_counter() + seconds
    while len(samples) < limit:
        started = time.perf_counter()
        call()
        ended = time.perf_counter()
        samples.append(ended - started)
        if ended > deadline:
            break
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ms = stats.latency_summary(samples)
    return {
        "per_second": len(samples) / sum(samples) if samples else 0.0,
        "p50_ms": ms["p50_ms"],
        "p99_ms": ms["p99_ms"],
        "count": ms["count"],
    }


def postgresql(*, seconds: float = 2.0) -> dict:
    """Single-row INSERT commits one after another (each waits for its WAL flush); SELECT 1 round trips."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.autocommit
    raw.autocommit = True
    try:
        with raw.cursor() as cursor:
            settings = {
                name: cursor.execute(f"SHOW {name}").fetchone()[0]
                for name in ("server_version", "synchronous_commit", "fsync", "autovacuum", "shared_buffers")
            }
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id bigserial PRIMARY KEY, at timestamptz)"
            )
            commit = _timed_loop(
                lambda: cursor.execute(f"INSERT INTO {PROBE_TABLE} (at) VALUES (now())"), seconds=seconds
            )
            cursor.execute(f"TRUNCATE {PROBE_TABLE}")
            select = _timed_loop(lambda: cursor.execute("SELECT 1").fetchone(), seconds=seconds / 2)
    finally:
        raw.autocommit = previous
    return {"settings": settings, "commit": _summary(commit), "select_1": _summary(select)}


def rabbitmq(url: str, *, seconds: float = 2.0) -> dict:
    """Publisher confirm round trips, one message at a time: persistent (as both send) and transient."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    queue = f"bench-calibrate-{uuid.uuid4().hex[:8]}"
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        result = {"server_version": str(connection._impl.server_properties.get("version", "?"))}
        for name, mode in (
            ("persistent", pika.DeliveryMode.Persistent),
            ("transient", pika.DeliveryMode.Transient),
        ):
            properties = pika.BasicProperties(delivery_mode=mode)
            samples = _timed_loop(
                lambda p=properties: channel.basic_publish("", queue, b"{}", properties=p, mandatory=True),
                seconds=seconds / 2,
            )
            result[f"confirm_{name}"] = _summary(samples)
            channel.queue_purge(queue)
        channel.queue_delete(queue)
        return result
    finally:
        if connection.is_open:
            connection.close()


def python_cpu(*, rounds: int = 5) -> dict:
    """One core's speed at the kind of work both systems do in Python (JSON, dicts, strings).

    The best of a few rounds: the least disturbed by other processes.
    """
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "bench.noop",
        "source": "/eventhub",
        "specversion": "1.0",
        "time": "2026-01-01T00:00:00+00:00",
        "data": {"i": 1, "items": [{"sku": f"sku-{n}", "qty": n} for n in range(5)]},
    }

    def work() -> None:
        for _ in range(2_000):
            decoded = json.loads(json.dumps(envelope))
            "-".join(f"{k}={v}" for k, v in decoded.items())

    best = min(_timed_loop(work, seconds=0.0, limit=1)[0] for _ in range(rounds))
    return {"us_per_op": best / 2_000 * 1e6}


def run(broker_url: str) -> dict:
    """Every calibration figure (about five seconds)."""
    return {"python": python_cpu(), "postgresql": postgresql(), "rabbitmq": rabbitmq(broker_url)}


def key_figures(calibration: dict) -> dict[str, tuple[float, str, str]]:
    """One figure per part, to compare two calibrations: name -> (value, number format, unit)."""
    figures = {}
    if calibration.get("python"):
        figures["Python"] = (calibration["python"]["us_per_op"], "{:.1f}", "us/op")
    if calibration.get("postgresql"):
        figures["PostgreSQL"] = (calibration["postgresql"]["commit"]["per_second"], "{:,.0f}", "commits/s")
    if calibration.get("rabbitmq"):
        confirm = calibration["rabbitmq"]["confirm_persistent"]["p50_ms"]
        figures["RabbitMQ confirm"] = (confirm, "{:.2f}", "ms")
    return figures


def headline(calibration: dict) -> str:
    """One line of the figures for the printed header."""
    parts = []
    if calibration.get("python"):
        parts.append(f"Python {calibration['python']['us_per_op']:.1f} us/op")
    pg = calibration.get("postgresql") or {}
    if pg:
        parts.append(
            f"PostgreSQL {pg['commit']['per_second']:,.0f} commits/s (p50 {pg['commit']['p50_ms']:.2f} ms, "
            f"p99 {pg['commit']['p99_ms']:.2f} ms), SELECT 1 {pg['select_1']['p50_ms']:.2f} ms"
        )
    mq = calibration.get("rabbitmq") or {}
    if mq:
        persistent, transient = mq["confirm_persistent"], mq["confirm_transient"]
        parts.append(
            f"RabbitMQ confirm {persistent['p50_ms']:.2f} ms persistent (p99 {persistent['p99_ms']:.2f} ms), "
            f"{transient['p50_ms']:.2f} ms transient"
        )
    return "; ".join(parts)
