"""The batch-confirming publisher against the real RabbitMQ."""

import pika
import pytest

from eventhub.broker.confirms import ConfirmingPublisher, PublishError
from tests.conftest import RABBITMQ_URL


def declare(name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        connection.channel().queue_declare(name, durable=True)
    finally:
        connection.close()


def depth(name: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return connection.channel().queue_declare(name, passive=True).method.message_count
    finally:
        connection.close()


@pytest.fixture
def publisher():
    unroutable: list[str] = []
    publisher = ConfirmingPublisher(pika.URLParameters(RABBITMQ_URL), on_unroutable=unroutable.append)
    publisher.unroutable = unroutable
    yield publisher
    publisher.close()


def test_a_batch_is_confirmed_message_by_message(publisher, queue_name):
    declare(queue_name)
    confirmed = publisher.publish([(queue_name, f"m{i}".encode()) for i in range(300)])
    assert confirmed == [True] * 300
    assert depth(queue_name) == 300


def test_batches_started_before_any_wait_are_each_confirmed(publisher, queue_name):
    declare(queue_name)
    first = publisher.start([(queue_name, b"a"), ("no-such-queue-for-eventhub-tests", b"b")])
    second = publisher.start([(queue_name, f"m{i}".encode()) for i in range(50)])  # while the first is out
    assert publisher.wait(second) == [True] * 50
    assert publisher.wait(first) == [True, False]
    assert depth(queue_name) == 51


def test_a_message_no_queue_takes_is_reported_unconfirmed(publisher, queue_name):
    declare(queue_name)
    confirmed = publisher.publish(
        [(queue_name, b"a"), ("no-such-queue-for-eventhub-tests", b"b"), (queue_name, b"c")]
    )
    assert confirmed == [True, False, True]
    assert publisher.unroutable == ["no-such-queue-for-eventhub-tests"]


def test_publishing_again_after_the_connection_closed_reconnects(publisher, queue_name):
    declare(queue_name)
    assert publisher.publish([(queue_name, b"1")]) == [True]
    publisher.close()
    assert publisher.publish([(queue_name, b"2")]) == [True]
    assert depth(queue_name) == 2


def test_an_unreachable_broker_raises_and_sends_nothing():
    publisher = ConfirmingPublisher(
        pika.URLParameters("amqp://guest:guest@127.0.0.1:1/%2F"), connect_timeout=5
    )
    with pytest.raises(PublishError):
        publisher.publish([("anything", b"x")])


def test_a_replaced_broker_closes_its_publisher(queue_name):
    from eventhub import broker as brokers
    from eventhub.broker.confirms import publisher_for

    declare(queue_name)
    replaced = brokers.setup(url=RABBITMQ_URL)
    try:
        publisher = publisher_for(replaced)
        assert publisher.publish([(queue_name, b"1")]) == [True]
        thread = publisher._io.thread
        brokers.setup(url=RABBITMQ_URL)
        thread.join(5)
        assert not thread.is_alive(), "the replaced broker's publisher thread still runs"
    finally:
        brokers.setup()
