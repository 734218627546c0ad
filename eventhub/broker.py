"""Dramatiq set-up: RabbitMQ with publisher confirms, or the embedded in-process broker.

``setup()`` builds the broker named by ``EVENTHUB["BROKER_URL"]`` and makes it
Dramatiq's global broker; eventhub's actors are (re)bound to it, so tests and
tools can switch brokers at run time with ``setup(url=...)``.
"""

import logging
import threading
import time
from collections.abc import Iterable

import dramatiq
from django.db import close_old_connections, connections
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from eventhub.conf import eventhub_settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_embedded_worker: dramatiq.Worker | None = None
# Actors declared by eventhub, re-declared whenever the broker changes.
_actors: list[dramatiq.Actor] = []


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


def build(url: str) -> dramatiq.Broker:
    """A broker for ``url``: "" or "stub://" is the embedded broker, amqp(s):// is RabbitMQ."""
    if not url or url.startswith("stub:"):
        broker = StubBroker()
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Confirms make a send mean "RabbitMQ has the message", which the outbox relies on.
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        raise ValueError(f"BROKER_URL must be empty (embedded) or amqp://...; got {url!r}")
    broker.add_middleware(DjangoConnections())
    return broker


def setup(url: str | None = None) -> dramatiq.Broker:
    """Build the configured broker, make it global and bind eventhub's actors to it."""
    global _embedded_worker
    with _lock:
        previous = dramatiq.broker.global_broker
        if _embedded_worker is not None:
            _embedded_worker.stop()
            _embedded_worker = None
        broker = build(eventhub_settings.BROKER_URL if url is None else url)
        dramatiq.set_broker(broker)
        for actor in _actors:
            actor.broker = broker
            broker.declare_actor(actor)
    if previous is not None and previous is not broker:
        previous.close()
    return broker


def register_actor(actor: dramatiq.Actor) -> dramatiq.Actor:
    """Remember an eventhub actor so ``setup`` can rebind it."""
    _actors.append(actor)
    return actor


def get_broker() -> dramatiq.Broker:
    """The broker eventhub publishes to."""
    return dramatiq.get_broker()


def is_embedded() -> bool:
    """Whether messages stay in this process (no RabbitMQ)."""
    return isinstance(get_broker(), StubBroker)


def ensure_embedded_worker() -> None:
    """Start in-process worker threads for the embedded broker, once per process."""
    global _embedded_worker
    if not is_embedded() or _embedded_worker is not None:
        return
    with _lock:
        if _embedded_worker is None:
            worker = dramatiq.Worker(get_broker(), worker_threads=eventhub_settings.EMBEDDED_WORKER_THREADS)
            worker.start()
            _embedded_worker = worker
            logger.info(
                "Started the embedded worker (%d threads).", eventhub_settings.EMBEDDED_WORKER_THREADS
            )


def drain_embedded(timeout_ms: int = 30_000) -> None:
    """Wait until the embedded broker's queues are empty and their messages processed."""
    if not is_embedded():
        return
    ensure_embedded_worker()
    broker = get_broker()
    for queue in list(broker.get_declared_queues()):
        broker.join(queue, timeout=timeout_ms)
    if _embedded_worker is not None:
        _embedded_worker.join()


def declare_queues(names: Iterable[str]) -> None:
    """Declare queues so that a worker on this broker consumes them."""
    broker = get_broker()
    for name in names:
        broker.declare_queue(name)
