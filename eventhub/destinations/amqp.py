"""The AMQP destination: publish the CloudEvents JSON to a RabbitMQ topic exchange.

A route's ``target`` names the exchange, optionally with a fixed routing key:

* ``orders`` -> exchange ``orders``, routing key = the event type (``order.paid``)
* ``orders/billing.all`` -> exchange ``orders``, routing key ``billing.all``

The exchange is declared as a durable topic exchange (names starting ``amq.`` are
only checked, as RabbitMQ reserves them). Consumers in any language bind their own
queues with patterns such as ``order.*``. Messages are published persistent, in
CloudEvents structured mode, with publisher confirms: the delivery succeeds when the
broker confirms. ``mandatory`` is off, so an exchange with no bound queue is not an
error (RabbitMQ confirms and drops the message, as for any publish/subscribe fan-out).

Each worker thread keeps one connection and channel to the broker and reuses it; a
broken connection is dropped and opened again once before the failure is raised
(so the route's retry policy applies).
"""

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.connection
import pika.exceptions

from eventhub import broker as brokers
from eventhub import tracing
from eventhub.conf import eventhub_settings
from eventhub.destinations.errors import DestinationError, PermanentError
from eventhub.events import IDENTITY, Transform

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
PERSISTENT = 2
_local = threading.local()


@dataclass
class _Link:
    """One thread's connection and confirming channel, and the exchanges it declared."""

    key: tuple
    connection: pika.BlockingConnection
    channel: Any
    declared: set[str] = field(default_factory=set)

    def close(self) -> None:
        try:
            if self.connection.is_open:
                self.connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            logger.debug("Closing the AMQP destination connection failed.", exc_info=True)

    def __del__(self) -> None:
        # A worker thread that ends takes its link with it: say goodbye to the broker.
        self.close()


def parse_target(target: str, event_type: str) -> tuple[str, str]:
    """``exchange`` or ``exchange/routing.key`` -> (exchange, routing key)."""
    exchange, _, routing_key = target.strip().partition("/")
    if not exchange:
        raise PermanentError(
            f"An AMQP route's target names an exchange ('orders' or 'orders/key'); got {target!r}."
        )
    return exchange, routing_key or event_type


def send(*, route: Any, envelope: dict[str, Any], delivery: Any, transform: Transform = IDENTITY) -> None:
    """Publish ``envelope`` (reshaped by ``transform``) to the route's exchange and wait for the confirm."""
    exchange, routing_key = parse_target(route.target, envelope["type"])
    body = json.dumps(transform.body(envelope), separators=(",", ":")).encode()
    properties = pika.BasicProperties(
        # A reshaped body is no longer a CloudEvent: plain JSON, the event's id and type as properties.
        content_type="application/json" if transform.reshapes else CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=str(envelope["id"]),
        type=envelope["type"],
        headers=tracing.outgoing_headers(envelope) or None,
    )
    for attempt in (1, 2):
        try:
            _publish(exchange, routing_key, body, properties)
            return
        except pika.exceptions.NackError:
            raise DestinationError(
                f"RabbitMQ refused (nacked) the message to exchange {exchange!r}."
            ) from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            drop_link()
            # A stale connection (closed by the broker while the thread was idle) is common:
            # one fresh try; a second failure is a real one for the retry policy.
            if attempt == 2:
                raise DestinationError(
                    f"Publishing to exchange {exchange!r} failed: {_describe(exc)}"
                ) from None


def _publish(exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
    link = _link()
    if exchange not in link.declared:
        passive = exchange.startswith("amq.")
        link.channel.exchange_declare(exchange, exchange_type="topic", durable=True, passive=passive)
        link.declared.add(exchange)
    link.channel.basic_publish(exchange, routing_key, body, properties, mandatory=False)


def _link() -> _Link:
    parameters = connection_parameters()
    key = tuple((p.host, p.port, p.virtual_host, p.credentials) for p in parameters)
    link: _Link | None = getattr(_local, "link", None)
    if link is not None and link.key == key and link.connection.is_open and link.channel.is_open:
        return link
    drop_link()
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.confirm_delivery()
    _local.link = _Link(key=key, connection=connection, channel=channel)
    return _local.link


def drop_link() -> None:
    """Close this thread's connection (the next send opens a new one)."""
    link: _Link | None = getattr(_local, "link", None)
    _local.link = None
    if link is not None:
        link.close()


def connection_parameters() -> list[pika.connection.Parameters]:
    """The nodes of the broker eventhub runs on, in the order they are tried: the active broker's, else
    BROKER_URL's."""
    active = brokers.get_broker()
    parameters = getattr(active, "parameters", None)
    if isinstance(parameters, pika.connection.Parameters):
        return [parameters]
    if isinstance(parameters, list) and parameters:
        return parameters
    nodes = brokers.broker_parameters(eventhub_settings.BROKER_URL)
    if nodes:
        return nodes
    raise PermanentError("AMQP routes need RabbitMQ: set BROKER_URL to an amqp:// URL.")


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:500]
