"""Shared fixtures: real RabbitMQ brokers, throw-away queues, in-test Dramatiq workers, Consul."""

import os
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pika
import pytest

from eventhub import broker as brokers
from eventhub import destinations
from tests.support.consul_fixtures import consul_agent  # noqa: F401 - the Consul agent fixture, for every module
from tests.support.http_receivers import webhook_receiver  # noqa: F401 - loopback webhook receivers

RABBITMQ_URL = os.environ.get("EVENTHUB_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture(autouse=True)
def _no_stale_signal_hooks() -> Iterator[None]:
    """Each test starts on an empty database: drop hooks and routes an earlier test loaded, with no query."""
    from eventhub.health import states
    from eventhub.hooks import table as hook_table
    from eventhub.outbox import route_table

    hook_table.reset()
    route_table.invalidate()
    states.reset()
    yield


@pytest.fixture(scope="session", autouse=True)
def _embedded_worker_stopped_before_the_test_database_is_dropped(django_db_setup):
    """At the end of the run, stop the embedded worker some test started, while its database exists.

    Otherwise the process's exit would hand its unfinished deliveries back (see
    eventhub.worker.handback) after pytest-django has pointed Django at the real database.
    """
    yield
    from eventhub.broker import embedded

    embedded.stop_embedded_worker()
    _close_background_threads_connections()


def _close_background_threads_connections() -> None:
    """Close the database connections eventhub's background threads keep (the sender's marks thread
    keeps its own for CONN_MAX_AGE, as after a request): else dropping the test database fails with
    "being accessed by other users". The threads reconnect if they are used again."""
    import gc

    from django.db.backends.base.base import BaseDatabaseWrapper

    from eventhub.outbox import background

    background.flush()
    # type(), not isinstance(): isinstance() asks a lazy object (a request's user) for its class,
    # which evaluates it, with a query, at the end of the run.
    for wrapper in [o for o in gc.get_objects() if issubclass(type(o), BaseDatabaseWrapper)]:
        if wrapper.connection is not None:
            wrapper.inc_thread_sharing()  # another thread's wrapper: closed from here, once, at the end
            try:
                wrapper.close()
            finally:
                wrapper.dec_thread_sharing()


@pytest.fixture
def rabbitmq_broker() -> Iterator[dramatiq.Broker]:
    """eventhub switched to the real RabbitMQ broker (publisher confirms on) for one test."""
    from eventhub.outbox import background

    broker = brokers.setup(url=RABBITMQ_URL)
    yield broker
    background.flush()  # what the test emitted goes to this broker, not the next test's
    brokers.setup()


@pytest.fixture
def stub_broker() -> Iterator[dramatiq.Broker]:
    """eventhub on Dramatiq's in-process StubBroker, for tests about logic rather than transport."""
    broker = brokers.setup(url="stub://")
    yield broker
    brokers.setup()


def delete_queues(names: list[str]) -> None:
    """Remove queues (and Dramatiq's delay and dead-letter companions) from RabbitMQ."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for name in names:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(name + suffix)
    finally:
        connection.close()


def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (0 for a queue never declared: nothing was ever sent to it)."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return connection.channel().queue_declare(name, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A queue name of this test's own, deleted from RabbitMQ afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    delete_queues([name])


@pytest.fixture
def exchange_name():
    """An exchange of this test's own, deleted afterwards."""
    name = f"test-ex-{uuid.uuid4().hex[:10]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    connection.channel().exchange_delete(name)
    connection.close()


@pytest.fixture
def run_worker() -> Iterator[Callable[..., dramatiq.Worker]]:
    """Start real Dramatiq worker threads on the current broker; stopped after the test."""
    started: list[dramatiq.Worker] = []

    def start(queues: list[str], threads: int = 2) -> dramatiq.Worker:
        broker = brokers.get_broker()
        brokers.declare_queues(queues)
        worker = dramatiq.Worker(broker, queues=set(queues), worker_threads=threads, worker_timeout=100)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def handler() -> Iterator[Callable[..., list]]:
    """Register a recording handler under a unique name: ``calls, name = handler()``."""
    names: list[str] = []

    def make(func: Callable | None = None) -> tuple[list, str]:
        calls: list = []
        name = f"test.handler.{uuid.uuid4().hex[:8]}"

        def record(envelope):
            calls.append(envelope)
            if func is not None:
                func(envelope)

        destinations.consumer(name)(record)
        names.append(name)
        return calls, name

    yield make
    for name in names:
        destinations.unregister(name)


@pytest.fixture
def customer(db):
    """A customer of the demo shop, whose models the hook tests watch."""
    from shop.models import Customer

    return Customer.objects.create(name="Ada", email="ada@example.com")
