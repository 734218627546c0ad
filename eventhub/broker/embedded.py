"""The embedded broker: Dramatiq's in-process StubBroker with worker threads in this process.

``make run`` uses it so that the application runs on a bare machine: messages
never leave the process, and worker threads started on first send run them.

Messages in memory die with the process, so the broker counts what it holds
(:class:`InFlight`), and at exit :func:`finish_embedded` lets the worker finish
what is ready to run, then stops it and returns the messages it did not finish,
for the layers above to hand back to the relay (see eventhub.worker.handback).
"""

import logging
import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from eventhub.conf import eventhub_settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_worker: dramatiq.Worker | None = None


class InFlight(Middleware):
    """The messages this broker holds and has not finished: queued, delayed or being processed.

    A message is counted once per copy enqueued (its retry is a copy with the same id)
    and uncounted when a copy is acknowledged or dead-lettered; at zero it is done.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._messages: dict[str, dramatiq.Message] = {}

    def after_enqueue(self, broker, message, delay):
        self._add(message, 1)

    def after_ack(self, broker, message):
        self._add(message, -1)

    after_nack = after_ack

    def _add(self, message, step: int) -> None:
        with self._lock:
            # An ack may come before its enqueue is counted (another thread ran the message): -1, then 0.
            count = self._count.get(message.message_id, 0) + step
            if count:
                self._count[message.message_id] = count
                self._messages.setdefault(message.message_id, message)
            else:
                self._count.pop(message.message_id, None)
                self._messages.pop(message.message_id, None)

    def unfinished(self) -> list[dramatiq.Message]:
        """The messages not yet done, in no particular order."""
        with self._lock:
            return [self._messages[key] for key, n in self._count.items() if n > 0]


def is_embedded() -> bool:
    """Whether messages stay in this process (no RabbitMQ)."""
    return isinstance(dramatiq.get_broker(), StubBroker)


def ensure_embedded_worker() -> None:
    """Start in-process worker threads for the embedded broker, once per process."""
    global _worker
    if not is_embedded() or _worker is not None:
        return
    with _lock:
        if _worker is None:
            threads = eventhub_settings.EMBEDDED_WORKER_THREADS
            worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=threads)
            worker.start()
            _worker = worker
            logger.info("Started the embedded worker (%d threads).", threads)


def stop_embedded_worker() -> None:
    """Stop the embedded worker threads, if any (the broker is being replaced)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stop()


def drain_embedded(timeout_ms: int = 30_000) -> None:
    """Wait until the embedded broker's queues are empty and their messages processed."""
    if not is_embedded():
        return
    ensure_embedded_worker()
    broker = dramatiq.get_broker()
    for queue in list(broker.get_declared_queues()):
        broker.join(queue, timeout=timeout_ms)
    if _worker is not None:
        _worker.join()


def finish_embedded(*, timeout: float) -> list[dramatiq.Message]:
    """Let the embedded worker finish the messages ready to run, then stop it; returns the unfinished.

    Waits up to ``timeout`` seconds for every message except those waiting out a retry's
    backoff. What is still unfinished then (delayed retries, messages queued behind a slow
    handler, a handler still running) is returned: the process is about to exit, and those
    messages with it. Empty when this process never started the embedded worker.
    """
    global _worker
    broker = dramatiq.get_broker()
    in_flight = next((m for m in broker.middleware if isinstance(m, InFlight)), None)
    with _lock:
        worker, _worker = _worker, None
    if worker is None or in_flight is None:
        return []
    deadline = time.monotonic() + timeout
    if _ready_work(broker):
        logger.info("Waiting up to %.0f s for the embedded worker's deliveries in progress.", timeout)
    while _ready_work(broker) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Each thread ends after its current message; a handler still running past the deadline is left behind.
    worker.stop(timeout=int(max(deadline - time.monotonic(), 1.0) * 1000))
    return in_flight.unfinished()


def _ready_work(broker: StubBroker) -> bool:
    """Messages queued or being processed, not counting retries waiting on a delay queue."""
    delayed = broker.get_declared_delay_queues()
    return any(q.unfinished_tasks for name, q in broker.queues.items() if name not in delayed)
