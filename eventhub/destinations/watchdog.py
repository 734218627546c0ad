"""One total deadline per webhook attempt, however slowly the receiver answers.

Socket timeouts bound each read, not the whole exchange: a receiver that sends one byte
every second (of its headers or its body) never trips a ten-second read timeout and
holds the worker thread as long as it likes. One watchdog thread per process keeps the
deadlines of the attempts in flight and, when one passes, calls its ``expire`` callback
(which shuts the attempt's socket, so the blocked read returns at once).
"""

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Deadline:
    """The moment an attempt must be over by (``time.monotonic()`` clock)."""

    at: float
    expired: bool = False
    _expire: Callable[[], None] | None = field(default=None, repr=False)

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(at=time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.at


class _Watchdog:
    """A heap of armed deadlines and the one thread that fires them."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline, expire: Callable[[], None]) -> None:
        with self._wake:
            deadline._expire = expire
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="eventhub-webhook-watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def disarm(self, deadline: Deadline) -> None:
        with self._wake:
            deadline._expire = None  # left in the heap; skipped when its time comes

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(timeout=self._heap[0][0] - time.monotonic() if self._heap else None)
                _at, _n, deadline = heapq.heappop(self._heap)
                expire, deadline._expire = deadline._expire, None
                if expire is None:
                    continue
                deadline.expired = True
            with contextlib.suppress(OSError):  # the socket was closed meanwhile: nothing to stop
                expire()


_watchdog = _Watchdog()


@contextmanager
def enforced(deadline: Deadline, expire: Callable[[], None]) -> Iterator[Deadline]:
    """Within the block, ``expire()`` is called (from another thread) if ``deadline`` passes."""
    _watchdog.arm(deadline, expire)
    try:
        yield deadline
    finally:
        _watchdog.disarm(deadline)
