"""Dramatiq set-up: RabbitMQ with publisher confirms, or the embedded in-process broker.

``setup()`` builds the broker named by ``EVENTHUB["BROKER_URL"]`` and makes it
Dramatiq's global broker; eventhub's actors are (re)bound to it, so tests and
tools can switch brokers at run time with ``setup(url=...)``.
"""

import threading
from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker

from eventhub.broker.embedded import InFlight, stop_embedded_worker
from eventhub.broker.middleware import DjangoConnections, RetryNotes, WorkerThreads
from eventhub.conf import eventhub_settings

_lock = threading.Lock()
# Actors declared by eventhub, re-declared whenever the broker changes.
_actors: list[dramatiq.Actor] = []


def build(url: str) -> dramatiq.Broker:
    """A broker for ``url``: "" or "stub://" is the embedded broker, amqp(s):// is RabbitMQ."""
    if not url or url.startswith("stub:"):
        broker = StubBroker()
        broker.add_middleware(InFlight())  # what dies with the process: handed back at exit
    elif url.startswith(("amqp://", "amqps://")):
        # Confirms make a send mean "RabbitMQ has the message", which the outbox relies on.
        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        raise ValueError(f"BROKER_URL must be empty (embedded) or amqp://...; got {url!r}")
    broker.add_middleware(DjangoConnections())
    broker.add_middleware(WorkerThreads())
    broker.add_middleware(RetryNotes())  # last: its after_* hooks run before Retries re-sends
    return broker


def setup(url: str | None = None) -> dramatiq.Broker:
    """Build the configured broker, make it global and bind eventhub's actors to it."""
    with _lock:
        previous = dramatiq.broker.global_broker
        stop_embedded_worker()
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


def uses_rabbitmq() -> bool:
    """Whether the current broker is RabbitMQ (sends wait for publisher confirms)."""
    return isinstance(get_broker(), RabbitmqBroker)


def declare_queues(names: Iterable[str]) -> None:
    """Declare queues so that a worker on this broker consumes them."""
    broker = get_broker()
    for name in names:
        broker.declare_queue(name)
