"""The embedded broker: Dramatiq's in-process StubBroker with worker threads in this process.

``make run`` uses it so that the application runs on a bare machine: messages
never leave the process, and worker threads started on first send run them.
"""

import logging
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker

from eventhub.conf import eventhub_settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_worker: dramatiq.Worker | None = None


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
