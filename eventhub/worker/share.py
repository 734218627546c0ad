"""A worker process's threads, shared between routes: one slow or hanging route cannot hold them all.

Without it, a webhook that hangs until its time limit takes every thread that picks
up one of its messages, and with a few messages in the queue that is every thread
of every worker: other routes wait a whole time limit. So, in each worker process, a
*slow* route may run on at most ``ROUTE_THREAD_SHARE`` of the threads (at least one);
the others stay for the other routes. Its other messages go back to the queue with a
delay (eventhub.worker.admission), so no thread waits for a place.

A route counts as slow here until it proves otherwise: its recent attempts in this
process took ``SLOW_ROUTE_SECONDS`` or more on average, or none has finished yet, or
one of its attempts now running is much older than its average (it started to hang).
A fast route is not held to the share: a single busy route may use every thread, as
the throughput benchmarks need, because its threads come free again at once.

A *failing* route (nearly all of its recent attempts here failed, like an endpoint
answering 500 to everything) costs a whole attempt per delivery however few threads
it holds: it starts at most ``FAILING_ROUTE_STARTS_PER_SECOND`` attempts a second in
each process until its attempts succeed again (the circuit breaker, when it opens,
stops them altogether).

All of it lives in memory, per process: no query, no lock shared between processes
(the limits an operator sets on a route are shared ones: eventhub.worker.limits).
"""

import itertools
import math
import threading
import time

from django.core.exceptions import ImproperlyConfigured

from eventhub import broker
from eventhub.conf import eventhub_settings

# An attempt this much older than its route's average means the route started to hang (and at least
# HANG_FLOOR_SECONDS, so that a route of 1 ms attempts is not called slow for one 10 ms answer).
HANG_FACTOR = 4.0
HANG_FLOOR_SECONDS = 0.05
# Weight of the newest attempt in a route's average duration.
AVERAGE_WEIGHT = 0.2
# A route is failing when its recent attempts here nearly all failed (about ten in a row from healthy).
FAILING = 0.9


class ThreadShare:
    """Per process: who runs what, each route's average attempt, and the line of deferred messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, dict[int, float]] = {}  # route id -> {ticket: started (monotonic)}
        self._average: dict[int, float] = {}  # route id -> average attempt, seconds
        self._line: dict[int, float] = {}  # route id -> when its last deferred message is due
        self._failures: dict[int, float] = {}  # route id -> share of its recent attempts that failed
        self._last_start: dict[int, float] = {}  # route id -> when its last attempt started here
        self._tickets = itertools.count(1)

    def cap(self) -> int:
        """How many threads of this process a slow route may hold; 0: no cap (no worker here)."""
        threads = broker.worker_threads()
        if not threads:
            return 0
        return max(1, math.floor(threads * eventhub_settings.ROUTE_THREAD_SHARE))

    def enter(self, route_id: int) -> int:
        """A ticket for one attempt of the route on this thread, or 0 when over its share."""
        cap = self.cap()
        with self._lock:
            running = self._running.setdefault(route_id, {})
            now = time.monotonic()
            if cap and len(running) >= cap and self._slow(route_id, running, now):
                return 0
            if self._failing(route_id) and now - self._last_start.get(route_id, 0.0) < _failing_interval():
                return 0
            ticket = next(self._tickets)
            running[ticket] = now
            self._last_start[route_id] = now
            return ticket

    def leave(self, route_id: int, ticket: int, *, counted: bool = True, failed: bool = False) -> None:
        """The attempt of ``ticket`` is over: free its thread; if ``counted``, note its time and result."""
        with self._lock:
            started = self._running.get(route_id, {}).pop(ticket, None)
            if started is None or not counted:
                return
            failures = self._failures.get(route_id)
            self._failures[route_id] = (
                float(failed) if failures is None else failures + AVERAGE_WEIGHT * (failed - failures)
            )
            seconds = time.monotonic() - started
            average = self._average.get(route_id)
            self._average[route_id] = (
                seconds if average is None else average + AVERAGE_WEIGHT * (seconds - average)
            )

    def place(self, route_id: int, *, slots: int) -> float:
        """Seconds until a deferred message of the route may find a place among ``slots``.

        Deferred messages are spread out at the pace the route's places come free
        (its average attempt, or its oldest running one if that is longer, per place),
        so that each comes back about when it can run rather than all at once.
        """
        with self._lock:
            now = time.monotonic()
            running = self._running.get(route_id, {})
            oldest = now - min(running.values()) if running else 0.0
            average = self._average.get(route_id)
            if average is None and oldest < eventhub_settings.SLOW_ROUTE_SECONDS:
                # A new route has no pace yet: come back after as long as its first attempts have run,
                # outside the line, so that a burst met by a cold worker is not spread out behind a
                # guess. Once they have run SLOW_ROUTE_SECONDS (it hangs), the line paces it.
                return oldest
            per_place = max(average or 0.0, oldest) / max(1, slots)
            if self._failing(route_id):
                per_place = max(per_place, _failing_interval())
            due = max(self._line.get(route_id, now), now) + per_place
            self._line[route_id] = due
            return due - now

    def running(self) -> dict[int, int]:
        """Attempts running in this process, per route."""
        with self._lock:
            return {route_id: len(tickets) for route_id, tickets in self._running.items() if tickets}

    def why(self, route_id: int) -> str:
        """Why the route's deliveries are sent back here, for the log."""
        with self._lock:
            failing = self._failing(route_id)
        return "its pace while failing" if failing else "its share of threads"

    def _failing(self, route_id: int) -> bool:
        return self._failures.get(route_id, 0.0) >= FAILING

    def _slow(self, route_id: int, running: dict[int, float], now: float) -> bool:
        average = self._average.get(route_id)
        if average is None or average >= eventhub_settings.SLOW_ROUTE_SECONDS:
            return True
        oldest = now - min(running.values())
        return oldest > max(HANG_FLOOR_SECONDS, HANG_FACTOR * average)


def _failing_interval() -> float:
    return 1.0 / eventhub_settings.FAILING_ROUTE_STARTS_PER_SECOND


threads = ThreadShare()


def check_settings() -> None:
    """Refuse settings the share and the limits cannot work with (at worker start), saying which."""
    share, slow = eventhub_settings.ROUTE_THREAD_SHARE, eventhub_settings.SLOW_ROUTE_SECONDS
    low, high = eventhub_settings.LIMIT_RETRY_MIN_SECONDS, eventhub_settings.LIMIT_RETRY_MAX_SECONDS
    grace = eventhub_settings.LIMIT_LEASE_GRACE_SECONDS
    pace = eventhub_settings.FAILING_ROUTE_STARTS_PER_SECOND
    problems = []
    if not isinstance(share, int | float) or not 0 < share <= 1:
        problems.append(
            f"ROUTE_THREAD_SHARE must be above 0 and at most 1 (1 turns the share off), got {share!r}"
        )
    if not isinstance(slow, int | float) or slow <= 0:
        problems.append(f"SLOW_ROUTE_SECONDS must be a positive number of seconds, got {slow!r}")
    if not all(isinstance(v, int | float) for v in (low, high)) or not 0 < low <= high:
        problems.append(
            f"LIMIT_RETRY_MIN_SECONDS and LIMIT_RETRY_MAX_SECONDS must be positive, the minimum not above "
            f"the maximum, got {low!r} and {high!r}"
        )
    if not isinstance(grace, int | float) or grace < 0:
        problems.append(f"LIMIT_LEASE_GRACE_SECONDS must be 0 or more seconds, got {grace!r}")
    if not isinstance(pace, int | float) or pace <= 0:
        problems.append(f"FAILING_ROUTE_STARTS_PER_SECOND must be a positive number, got {pace!r}")
    if problems:
        raise ImproperlyConfigured("EVENTHUB settings: " + "; ".join(problems) + ".")
