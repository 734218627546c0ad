"""The AMQP destination: CloudEvents JSON to a RabbitMQ topic exchange, with publisher confirms."""

import json
import time
import uuid
from types import SimpleNamespace

import pika
import pytest

from eventhub import emit
from eventhub.destinations import DestinationError, PermanentError, amqp
from eventhub.models import Delivery, Route
from tests.conftest import RABBITMQ_URL
from tests.support import factories
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class PlainConsumer:
    """What a consumer in another language does: bind its own queue to the exchange, read messages."""

    def __init__(self, exchange: str, binding_key: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        self.queue = f"test-foreign-{uuid.uuid4().hex[:10]}"
        self.channel.queue_declare(self.queue, exclusive=True)
        self.channel.queue_bind(self.queue, exchange, routing_key=binding_key)

    def next(self, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is not None:
                return method, properties, json.loads(body)
            time.sleep(0.05)
        raise AssertionError("no message arrived")

    def empty(self) -> bool:
        return self.channel.queue_declare(self.queue, passive=True).method.message_count == 0

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def foreign():
    consumers: list[PlainConsumer] = []

    def bind(exchange: str, binding_key: str) -> PlainConsumer:
        consumers.append(PlainConsumer(exchange, binding_key))
        return consumers[-1]

    yield bind
    for consumer in consumers:
        consumer.close()


@pytest.fixture(autouse=True)
def fresh_link():
    yield
    amqp.drop_link()


def amqp_route(exchange_target: str, queue: str, **fields) -> Route:
    return factories.route(
        factories.event_type("order.paid"), exchange_target, destination_kind="amqp", queue=queue, **fields
    )


def test_the_route_publishes_cloudevents_json_to_a_queue_bound_by_a_plain_pika_consumer(
    rabbitmq_broker, queue_name, run_worker, exchange_name, foreign
):
    consumer = foreign(exchange_name, "order.*")
    route = amqp_route(exchange_name, queue_name)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 42}, subject="order/42")

    method, properties, body = consumer.next()
    assert body == event.envelope
    assert body["specversion"] == "1.0" and body["type"] == "order.paid" and body["data"] == {"order_id": 42}
    assert method.routing_key == "order.paid" and method.exchange == exchange_name
    assert properties.content_type == "application/cloudevents+json"
    assert properties.message_id == str(event.id) and properties.delivery_mode == 2
    delivery = wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").first())
    assert delivery.attempts == 1 and delivery.last_error == ""


def test_a_target_with_a_routing_key_overrides_the_event_type(
    rabbitmq_broker, queue_name, run_worker, exchange_name, foreign
):
    by_type = foreign(exchange_name, "order.paid")
    by_key = foreign(exchange_name, "billing.#")
    amqp_route(f"{exchange_name}/billing.invoices", queue_name)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 1})

    method, _, body = by_key.next()
    assert method.routing_key == "billing.invoices" and body["id"] == str(event.id)
    wait_for(lambda: Delivery.objects.filter(status="succeeded").exists())
    assert by_type.empty()


def test_an_exchange_with_no_bound_queue_is_not_an_error(
    rabbitmq_broker, queue_name, run_worker, exchange_name
):
    route = amqp_route(exchange_name, queue_name)
    run_worker([queue_name])
    emit("order.paid", data={})
    delivery = wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").first())
    assert delivery.attempts == 1


def test_a_broker_refusal_fails_the_delivery_with_the_brokers_reason(
    rabbitmq_broker, queue_name, run_worker, exchange_name
):
    # The exchange exists with another type: RabbitMQ refuses to redeclare it as topic.
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    connection.channel().exchange_declare(exchange_name, exchange_type="fanout", durable=True)
    connection.close()
    route = amqp_route(exchange_name, queue_name, max_attempts=2)
    run_worker([queue_name])

    emit("order.paid", data={})

    delivery = wait_for(lambda: Delivery.objects.filter(route=route, status="dead").first())
    assert delivery.attempts == 2
    assert "PRECONDITION_FAILED" in delivery.last_error and exchange_name in delivery.last_error


def envelope() -> dict:
    return {"id": str(uuid.uuid4()), "type": "order.paid", "specversion": "1.0", "source": "/t", "data": {}}


def test_a_thread_reuses_its_connection_and_reconnects_after_it_breaks(
    rabbitmq_broker, exchange_name, foreign
):
    consumer = foreign(exchange_name, "#")
    route = SimpleNamespace(target=exchange_name)

    amqp.send(route=route, envelope=envelope(), delivery=None)
    first = amqp._local.link
    amqp.send(route=route, envelope=envelope(), delivery=None)
    assert amqp._local.link is first  # no connection set-up per message

    first.connection.close()  # e.g. the broker dropped an idle connection
    amqp.send(route=route, envelope=envelope(), delivery=None)

    assert amqp._local.link is not first and amqp._local.link.connection.is_open
    assert [consumer.next()[2]["type"] for _ in range(3)] == ["order.paid"] * 3


def test_an_unreachable_broker_raises_so_the_retry_policy_applies(settings, stub_broker):
    settings.EVENTHUB = {"BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}
    with pytest.raises(DestinationError, match="AMQPConnectionError"):
        amqp.send(route=SimpleNamespace(target="ex"), envelope=envelope(), delivery=None)


def test_without_rabbitmq_an_amqp_route_is_a_permanent_error(settings, stub_broker):
    settings.EVENTHUB = {"BROKER_URL": ""}
    with pytest.raises(PermanentError, match="BROKER_URL"):
        amqp.send(route=SimpleNamespace(target="ex"), envelope=envelope(), delivery=None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [("orders", ("orders", "order.paid")), ("orders/billing.x", ("orders", "billing.x"))],
)
def test_targets(target, expected):
    assert amqp.parse_target(target, "order.paid") == expected


def test_a_target_without_an_exchange_is_permanent():
    with pytest.raises(PermanentError):
        amqp.parse_target("/key", "order.paid")
