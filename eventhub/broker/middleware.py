"""Dramatiq middleware that every eventhub broker carries: healthy database connections per message."""

import threading
import time

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
