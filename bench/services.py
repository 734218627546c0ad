"""What the harness needs from RabbitMQ, PostgreSQL and the OS: queues, worker processes, tables."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parent.parent


def broker_url() -> str:
    """The RabbitMQ URL both systems use."""
    from eventhub.conf import eventhub_settings

    return eventhub_settings.BROKER_URL


def queue_counts(name: str) -> tuple[int, int]:
    """(ready messages, consumers) of queue ``name``; (0, 0) when it does not exist."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url()))
    try:
        method = connection.channel().queue_declare(name, passive=True).method
        return method.message_count, method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0, 0
    finally:
        if connection.is_open:
            connection.close()


class QueueWatcher:
    """Polls queue depths over one long-lived connection (cheap enough to poll every few ms)."""

    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(broker_url()))
        self.channel = self.connection.channel()

    def counts(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of queue ``name``, which must exist."""
        method = self.channel.queue_declare(name, passive=True).method
        return method.message_count, method.consumer_count

    def close(self) -> None:
        """Close the connection."""
        if self.connection.is_open:
            self.connection.close()


def delete_queues(names: list[str]) -> None:
    """Remove the run's own queues (and Dramatiq's delay and dead-letter companions)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url()))
    try:
        channel = connection.channel()
        for name in names:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(name + suffix)
    finally:
        connection.close()


class Workers:
    """A Dramatiq worker command (master + processes) run in its own process group."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_consuming(self, queue: str, consumers: int, timeout: float = 60.0) -> None:
        """Block until ``consumers`` consumers are attached to ``queue``."""
        deadline = time.monotonic() + timeout
        while queue_counts(queue)[1] < consumers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start consuming {queue}; see {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the master (it stops its processes); SIGKILL our own group if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def raw_workers(queue: str, processes: int, threads: int, out_dir: str, log: Path) -> Workers:
    """Plain ``dramatiq`` on the raw actors."""
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "bench.raw_app",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        queue,
    ]
    env = {
        "BENCH_ROLE": "raw-worker",
        "BENCH_RAW_QUEUE": queue,
        "BENCH_OUT_DIR": out_dir,
        "BROKER_URL": broker_url(),
    }
    return Workers(argv, env, log)


def eventhub_workers(queue: str, processes: int, threads: int, out_dir: str, log: Path) -> Workers:
    """``manage.py eventhub_worker`` with the bench's settings."""
    argv = [
        sys.executable,
        "manage.py",
        "eventhub_worker",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        queue,
    ]
    env = {"DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_OUT_DIR": out_dir, "BROKER_URL": broker_url()}
    return Workers(argv, env, log)


def ensure_database() -> None:
    """Create the PostgreSQL database if it is missing, then migrate it."""
    from django.conf import settings
    from django.core.management import call_command

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        import psycopg

        params = {
            k: v
            for k, v in {
                "host": db.get("HOST"),
                "port": db.get("PORT"),
                "user": db.get("USER"),
                "password": db.get("PASSWORD"),
            }.items()
            if v
        }
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
                conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    call_command("migrate", verbosity=0, interactive=False)


def ensure_history(deliveries: int) -> int:
    """Make sure the database holds at least ``deliveries`` deliveries of history; returns how many it added.

    A production eventhub database holds the deliveries of earlier days. Without
    them every phase would start on empty tables, whose statistics make PostgreSQL
    plan sequential scans (foreign-key checks, prepared statements) that stay in use
    while the tables grow: a cost no production database pays. The history is
    written once (eventhub.dashboard.seeding, event types ``seed.*``) and kept between runs.
    """
    from django.db import connection

    from eventhub.dashboard.seeding import SeedPlan, seed
    from eventhub.models import Attempt, Delivery, Event

    have = Delivery.objects.exclude(route__event_type__name__startswith="bench.").count()
    missing = max(deliveries - have, 0)
    if missing:
        from bench.progress import Progress

        writing = Progress("history (once per database)", missing, unit="deliveries")
        # A seed of its own for each top-up: the same seed writes the same event ids again.
        plan = SeedPlan(deliveries=missing, seed=have + 1)
        seed(plan, progress=lambda done, total: writing.update(done))
        writing.finish()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Attempt, Delivery, Event):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return missing


def clear_bench_rows(route_ids: list[int]) -> None:
    """Delete the bench's events, deliveries and attempts (only those), then refresh statistics."""
    from django.db import connection

    from eventhub.models import Attempt, Delivery, Event

    ids = ",".join(str(int(i)) for i in route_ids)
    delivery, attempt, event = Delivery._meta.db_table, Attempt._meta.db_table, Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {attempt} WHERE delivery_id IN "
            f"(SELECT id FROM {delivery} WHERE route_id IN ({ids}))"
        )
        cursor.execute(f"DELETE FROM {delivery} WHERE route_id IN ({ids})")
        cursor.execute(f"DELETE FROM {event} WHERE type LIKE %s", ["bench.%"])
        if connection.vendor == "postgresql":
            for table in (attempt, delivery, event):
                cursor.execute(f"VACUUM ANALYZE {table}")
