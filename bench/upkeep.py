"""A stand-in for autovacuum while the eventhub phases run, when the server has it switched off.

PostgreSQL keeps query plans (foreign-key checks, prepared statements) per
connection and re-plans them when a table's statistics change. Autovacuum's
ANALYZE is what changes them as tables grow; without it, plans made while the
bench's tables were empty (sequential scans) are kept while they grow to tens of
thousands of rows, and every insert gets slower. A production server runs
autovacuum; some CI servers don't, so the harness does its work there.
"""

import threading
import time

from django.db import connection

from bench import trace
from eventhub.models import Attempt, Delivery, Event

ANALYZE_EVERY_SECONDS = 5.0
VACUUM_EVERY = 6  # analyses


def autovacuum_is_on() -> bool:
    """Whether the server's autovacuum runs (always true off PostgreSQL: nothing to stand in for)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


class AutovacuumStandIn:
    """Context manager: ANALYZE eventhub's tables every few seconds (and VACUUM now and then)."""

    def __init__(self) -> None:
        self.active = not autovacuum_is_on()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-autovacuum", daemon=True)

    def __enter__(self) -> "AutovacuumStandIn":
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self.active:
            self._thread.join()

    def _run(self) -> None:
        tables = ", ".join(m._meta.db_table for m in (Event, Delivery, Attempt))
        rounds = 0
        try:
            while not self._stop.wait(ANALYZE_EVERY_SECONDS):
                rounds += 1
                started, clock = time.time(), time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"VACUUM ANALYZE {tables}" if rounds % VACUUM_EVERY == 0 else f"ANALYZE {tables}"
                    )
                if trace.enabled():
                    trace.event("autovacuum stand-in", started, time.perf_counter() - clock)
        finally:
            connection.close()
