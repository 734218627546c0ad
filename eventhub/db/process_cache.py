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
"""

import logging
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

    def get(self) -> T:
        """The value, reloaded first when the interval has passed since the last load."""
        if time.monotonic() - self._checked < self._interval:
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
        started = time.monotonic()
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
        if keep:
            with self.lock:
                self.value, self.loaded, self._checked, self._forced = value, True, started, False
        return value

    def invalidate(self) -> None:
        """Make the next read load again, from nothing (something was edited in this process)."""
        self._checked, self._forced = _NEVER, True

    def settings_changed(self) -> None:
        """Read the interval again (``override_settings`` in tests)."""
        self._interval = self._interval_setting()

    def reset(self, value: T | None = None, *, fresh: bool = False) -> None:
        """Forget what was loaded: back to ``value`` (default: empty), fresh for one interval or not."""
        with self.lock:
            self.value = self._empty if value is None else value
            self.loaded, self._forced = False, False
            self._interval = self._interval_setting()
            self._checked = time.monotonic() if fresh else _NEVER
