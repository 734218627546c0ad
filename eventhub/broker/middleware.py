"""Dramatiq middleware that every eventhub broker carries: healthy database connections per message,
and notes that a message's run leaves for its retry.
"""

import threading
import time
from typing import Any

from django.db import close_old_connections, connections
from dramatiq.middleware import Middleware


class DjangoConnections(Middleware):
    """Give each message a healthy database connection, and close them when workers stop.

    Worker threads are long-lived: without this, a connection dropped by PostgreSQL
    would break every later message on that thread. Connections are checked after
    each message, and before one only when the thread has been idle (the server may
    have dropped the connection meanwhile): back to back, that check would repeat the
    one just made.
    """

    IDLE_SECONDS = 1.0

    def __init__(self) -> None:
        self._last = threading.local()

    def before_process_message(self, broker, message):
        if time.monotonic() - getattr(self._last, "checked", 0.0) > self.IDLE_SECONDS:
            close_old_connections()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        close_old_connections()
        self._last.checked = time.monotonic()

    after_skip_message = after_process_message

    def before_worker_thread_shutdown(self, broker, thread):
        connections.close_all()

    def before_consumer_thread_shutdown(self, broker, thread):
        connections.close_all()


NOTE_OPTION = "eventhub_note"
_current = threading.local()


class RetryNotes(Middleware):
    """Let a run of a message leave a note for the run that retries it.

    An actor's exception with a ``retry_note`` attribute sets the note the retried
    message carries (``None`` removes it); any other exception, or none, leaves the
    note as it is. The note travels in the message's options, so it reaches the
    retry on whichever worker takes it. Added after Dramatiq's Retries, it sees a
    failure first (``after_*`` hooks run in reverse order), before Retries sends the
    message again.
    """

    def before_process_message(self, broker, message):
        _current.note = message.options.get(NOTE_OPTION)
        _current.message = message

    def after_process_message(self, broker, message, *, result=None, exception=None):
        _current.note = _current.message = None
        if exception is None or not hasattr(exception, "retry_note"):
            return
        if exception.retry_note is None:
            message.options.pop(NOTE_OPTION, None)
        else:
            message.options[NOTE_OPTION] = exception.retry_note

    def after_skip_message(self, broker, message):
        _current.note = _current.message = None


def current_note() -> Any:
    """The note the message this thread is processing carries from its previous run, or None."""
    return getattr(_current, "note", None)


def current_message() -> Any:
    """The message this thread is processing (a Dramatiq MessageProxy), or None outside an actor."""
    return getattr(_current, "message", None)


class WorkerThreads(Middleware):
    """Remember how many worker threads this process runs (its latest worker's, tests may start several)."""

    def after_worker_boot(self, broker, worker):
        global _threads
        _threads = worker.worker_threads


_threads = 0


def worker_threads() -> int:
    """The worker threads of this process's Dramatiq worker; 0 before one has started."""
    return _threads
