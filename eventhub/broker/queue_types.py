"""Dramatiq's RabbitMQ broker with a choice of queue type: classic (Dramatiq's own) or quorum.

Dramatiq declares every queue as a classic queue. On a RabbitMQ cluster, quorum
queues are the replicated kind (classic mirrored queues are gone in RabbitMQ 4),
so with ``QUEUE_TYPE = "quorum"`` this broker declares the consumer queue, its
delay queue (``.DQ``) and its dead-letter queue (``.XQ``) as quorum queues:

- ``x-queue-type: quorum``, durable (quorum queues are never transient or exclusive);
- ``x-delivery-limit``: a message handed out that many times without being
  acknowledged (a worker killed by it, again and again) is dead-lettered to ``.XQ``
  instead of killing workers for ever;
- no ``x-max-priority``: quorum queues refuse it, so a priority setting is refused here.

Dramatiq's retries and delays need nothing else: a retry is a new message on the
delay queue, and the dead-letter routing is the same as for classic queues.

A queue keeps the type it was created with: RabbitMQ refuses to redeclare a
classic queue as quorum (and the reverse) with PRECONDITION_FAILED.
:class:`QueueTypeMismatch` says so and what to do (docs/deployment.md).
"""

import pika
import pika.exceptions
from django.core.exceptions import ImproperlyConfigured
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.common import dq_name, xq_name

QUEUE_TYPES = ("classic", "quorum")
_PRECONDITION_FAILED = 406


class QueueTypeMismatch(RuntimeError):
    """RabbitMQ holds the queue with another type or arguments than eventhub declares."""


def check_queue_type(queue_type: str, delivery_limit: int) -> None:
    """Refuse an unknown QUEUE_TYPE or a delivery limit below 1, with a clear message."""
    if queue_type not in QUEUE_TYPES:
        raise ImproperlyConfigured(
            "EVENTHUB['QUEUE_TYPE'] (env EVENTHUB_QUEUE_TYPE) must be 'classic' or 'quorum'; "
            f"got {queue_type!r}."
        )
    if not isinstance(delivery_limit, int) or isinstance(delivery_limit, bool) or delivery_limit < 1:
        raise ImproperlyConfigured(
            f"EVENTHUB['QUEUE_DELIVERY_LIMIT'] must be a whole number of at least 1; got {delivery_limit!r}."
        )


class TypedQueueBroker(RabbitmqBroker):
    """RabbitmqBroker declaring its queues as ``queue_type`` ("classic" behaves as Dramatiq does)."""

    def __init__(self, *, queue_type: str = "classic", delivery_limit: int = 20, **kwargs) -> None:
        check_queue_type(queue_type, delivery_limit)
        if queue_type == "quorum" and kwargs.get("max_priority"):
            raise ImproperlyConfigured(
                "Quorum queues take no x-max-priority: drop max_priority or use classic."
            )
        super().__init__(**kwargs)
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit

    def _build_queue_arguments(self, queue_name):
        arguments = super()._build_queue_arguments(queue_name)
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments

    def _declare_queue(self, queue_name):
        return self._declare(queue_name, self._build_queue_arguments(queue_name))

    def _declare_dq_queue(self, queue_name):
        return self._declare(dq_name(queue_name), self._build_queue_arguments(queue_name))

    def _declare_xq_queue(self, queue_name):
        # Dead messages expire after Dramatiq's fixed TTL either way; quorum queues honour x-message-ttl.
        arguments = {"x-message-ttl": DEAD_MESSAGE_TTL}
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        return self._declare(xq_name(queue_name), arguments)

    def _declare(self, name: str, arguments: dict):
        try:
            return self.channel.queue_declare(queue=name, durable=True, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
            del self.channel  # closed by the broker; the next caller opens a new one
            raise QueueTypeMismatch(self._mismatch_message(name, exc.reply_text)) from None

    def _mismatch_message(self, name: str, reply: str) -> str:
        vhost = self._vhost()
        return (
            f"RabbitMQ refused to declare queue {name!r} in vhost {vhost!r} as a {self.queue_type} queue: "
            f"{reply}. A queue keeps the type and arguments it was created with. Either set "
            f"EVENTHUB_QUEUE_TYPE back to what the queue is, or migrate it: stop the workers and the relay, "
            f"let the queue drain, delete it and its .DQ and .XQ companions (rabbitmqctl delete_queue -p "
            f"{vhost} {name}), then start eventhub with the new QUEUE_TYPE; pending deliveries are sent "
            f"again by the relay (docs/deployment.md, 'Moving to quorum queues')."
        )

    def _vhost(self) -> str:
        parameters = self.parameters[0] if isinstance(self.parameters, list) else self.parameters
        return getattr(parameters, "virtual_host", "/")
