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

from eventhub.broker.confirms import close_publisher
from eventhub.broker.embedded import InFlight, stop_embedded_worker
from eventhub.broker.middleware import DjangoConnections, RetryNotes, WorkerThreads
from eventhub.broker.queue_types import TypedQueueBroker, check_queue_type
from eventhub.broker.urls import broker_parameters, split_broker_urls
from eventhub.conf import eventhub_settings

_lock = threading.Lock()
# Actors declared by eventhub, re-declared whenever the broker changes.
_actors: list[dramatiq.Actor] = []


def build(url: str) -> dramatiq.Broker:
    """A broker for ``url``: "" or "stub://" is the embedded broker, amqp(s):// URLs are RabbitMQ.

    ``url`` may list the nodes of a RabbitMQ cluster, separated by commas: connections go
    to the first node that answers, and to the next when it goes away. Raises
    ImproperlyConfigured for a bad URL list or QUEUE_TYPE.
    """
    check_queue_type(eventhub_settings.QUEUE_TYPE, eventhub_settings.QUEUE_DELIVERY_LIMIT)
    broker_parameters(url)  # refuses what is not amqp(s):// or mixes vhosts, users or schemes
    urls = split_broker_urls(url)
    if not urls:
        broker = StubBroker()
        broker.add_middleware(InFlight())  # what dies with the process: handed back at exit
    else:
        # Confirms make a send mean "RabbitMQ has the message", which the outbox relies on.
        broker = TypedQueueBroker(
            url=urls if len(urls) > 1 else urls[0],
            confirm_delivery=True,
            queue_type=eventhub_settings.QUEUE_TYPE,
            delivery_limit=eventhub_settings.QUEUE_DELIVERY_LIMIT,
        )
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
        close_publisher(previous)  # else its I/O thread and connection outlive it
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


def declare_queues(names: Iterable[str], *, ensure: bool = False) -> None:
    """Declare queues so that a worker on this broker consumes them; ``ensure`` creates them on RabbitMQ now.

    With ``ensure``, a queue RabbitMQ holds with another type raises QueueTypeMismatch.
    """
    broker = get_broker()
    for name in names:
        broker.declare_queue(name, ensure=ensure and isinstance(broker, RabbitmqBroker))
