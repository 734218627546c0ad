"""A value every process keeps in memory and reloads from the database now and then.

Event types and routes (read by every emit and every delivery) and signal hooks
(read by every model signal) change rarely: an operator edits them in the admin.
Asking the database each time would cost a round trip per emit or per save, so
each process keeps its own copy and reloads it at most every ``interval()``
seconds; saves made in this process invalidate it at once, so its own edits take
effect immediately and other processes' edits within the interval.

One helper for both copies, so that they agree on the rules:

* ``load(previous)`` reads the value; it may return ``previous`` when a cheap
  check says nothing changed (the hooks' version check).
* With ``committed_only``, a value loaded inside a transaction is used by that
  transaction but not kept: it may hold rows the transaction has not committed.
* With ``keep_on_error``, a failing load (no database yet, a database that is
  down) keeps the previous value until the next interval instead of raising.
* A load that triggers itself on the same thread (loading hooks instantiates
  models, whose signals ask for the hooks) gets the previous value.

Long-running processes (worker processes, web processes) call
:meth:`ProcessCache.refresh_in_background`: a daemon thread then reloads the
value every interval and readers never wait for a reload. A reload takes a
few milliseconds (more on a slow or busy machine); run by a reader, it stalls
that reader, and in a worker process every thread waiting on the combined write
that happened to read it (measured in bench/stalls.py: the periodic latency
outliers). Only a first load and an edit made in this process still load in the
reader's thread, so that the edit takes effect at once. A thread that edited
the rows inside a transaction keeps reading them directly until that
transaction ends, whatever the background thread has loaded meanwhile.

Web processes serve requests on several threads, so a load (by a reader or by
the background thread) may be under way when another thread's edit commits and
invalidates the copy: such a load read the rows before the edit, and is not kept
(every invalidation bumps a generation that a load compares before keeping its
value). tests/db/test_process_cache.py shows the interleavings.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NEVER = float("-inf")


class ProcessCache(Generic[T]):
    """A per-process copy of ``load()``'s value, reloaded after ``interval()`` seconds or on invalidation."""

    def __init__(
        self,
        load: Callable[[T | None], T],
        *,
        interval: Callable[[], float],
        empty: T,
        committed_only: bool = False,
        keep_on_error: bool = False,
        name: str = "",
    ) -> None:
        self._load = load
        self._interval_setting = interval
        self._empty = empty
        self.committed_only = committed_only
        self.keep_on_error = keep_on_error
        self.name = name or getattr(load, "__qualname__", "cache")
        self.lock = threading.Lock()
        self._local = threading.local()
        self.value: T = empty
        self.loaded = False  # loaded from the database at least once
        self._checked = _NEVER
        self._forced = False  # the next load starts from nothing, not from the previous value
        # Read from settings at each reload, not per read: a settings lookup costs more than the check.
        self._interval = 0.0
        # Bumped by every invalidation and reset: a background load begun before one is not kept.
        self._generation = 0
        self._background_pid = 0  # the process whose background thread reloads this copy
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def get(self) -> T:
        """The value, reloaded first when the interval has passed since the last load.

        With a background thread, the interval passing never makes the reader wait.
        """
        if getattr(self._local, "edited", False):
            if self.committed_only and connection.in_atomic_block:
                return self.refresh()  # this transaction's own rows; not kept
            self._local.edited = False
        if time.monotonic() - self._checked < self._interval:
            return self.value
        if self._background_pid == os.getpid() and self.loaded and not self._forced:
            self._wake.set()  # late: the thread was busy or failed; it reloads now
            return self.value
        return self.refresh()

    def refresh(self) -> T:
        """Load now (the loader may keep the previous value when nothing changed)."""
        if getattr(self._local, "busy", False):
            return self.value
        self._local.busy = True
        try:
            return self._reload()
        finally:
            self._local.busy = False

    def _reload(self) -> T:
        generation, started = self._generation, time.monotonic()
        self._interval = self._interval_setting()
        keep = not (self.committed_only and connection.in_atomic_block)
        previous = self.value if self.loaded and not self._forced else None
        try:
            value = self._load(previous)
        except Exception as exc:
            if not self.keep_on_error:
                raise
            logger.debug("%s not refreshed: %s", self.name, exc)
            self._checked = started  # don't ask a database that is down on every read
            return self.value
        with self.lock:
            # Another thread's invalidation (an edit committed) during this load makes it stale for
            # everyone but this reader, whose read began before the edit: not kept.
            if keep and generation == self._generation:
                self.value, self.loaded, self._checked, self._forced = value, True, started, False
        return value

    def invalidate(self) -> None:
        """Make the next read load again, from nothing (something was edited in this process)."""
        with self.lock:  # not between another thread's generation check and its keeping a load
            self._generation += 1
            self._checked, self._forced = _NEVER, True
        self._local.edited = True

    def refresh_in_background(self) -> None:
        """Reload in a daemon thread of this process every interval from now on (once per process).

        The thread holds a database connection of its own, checked after each load as
        after a request (``CONN_MAX_AGE``). A load that fails is logged and tried again
        at the next interval; readers keep the last value meanwhile.
        """
        with self.lock:
            if self._background_pid == os.getpid():
                return
            self._background_pid = os.getpid()
            self._wake, self._stop = threading.Event(), threading.Event()
            self._thread = threading.Thread(
                target=self._background,
                args=(self._wake, self._stop),
                name=f"eventhub-refresh-{self.name}",
                daemon=True,
            )
            self._thread.start()

    def stop_background(self, timeout: float = 5.0) -> None:
        """Stop this process's background thread (it closes its connection); readers reload again."""
        with self.lock:
            thread, self._thread, self._background_pid = self._thread, None, 0
            self._stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _background(self, wake: threading.Event, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                wake.wait(max(self._interval - (time.monotonic() - self._checked), 0.05))
                wake.clear()
                if not stop.is_set() and time.monotonic() - self._checked >= self._interval:
                    self._background_load()
        finally:
            connection.close()

    def _background_load(self) -> None:
        generation, started = self._generation, time.monotonic()
        try:
            self._interval = self._interval_setting()
            value = self._load(self.value if self.loaded and not self._forced else None)
        except Exception:  # noqa: BLE001 - the thread must outlive a database outage
            # Once per outage at warning level; every interval after that at debug level.
            log = logger.debug if self._failing else logger.warning
            log("%s not refreshed; keeping the last copy.", self.name, exc_info=True)
            self._failing, self._checked = True, started
            return
        finally:
            connection.close_if_unusable_or_obsolete()
        self._failing = False
        with self.lock:
            if generation == self._generation:
                self.value, self.loaded, self._checked, self._forced = value, True, started, False

    def settings_changed(self) -> None:
        """Read the interval again (``override_settings`` in tests)."""
        self._interval = self._interval_setting()

    def reset(self, value: T | None = None, *, fresh: bool = False) -> None:
        """Forget what was loaded: back to ``value`` (default: empty), fresh for one interval or not."""
        with self.lock:
            self._generation += 1
            self.value = self._empty if value is None else value
            self.loaded, self._forced = False, False
            self._interval = self._interval_setting()
            self._checked = time.monotonic() if fresh else _NEVER
