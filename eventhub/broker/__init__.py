"""Dramatiq on RabbitMQ: building the broker, publisher confirms, the embedded broker, middleware.

The one place that knows which broker eventhub runs on. Everything above it
publishes through :func:`get_broker` and :class:`ConfirmingPublisher`.
"""

from eventhub.broker.confirms import ConfirmingPublisher, publisher_for
from eventhub.broker.embedded import drain_embedded, ensure_embedded_worker, finish_embedded, is_embedded
from eventhub.broker.limits import enqueue_retry, time_limit
from eventhub.broker.middleware import (
    DjangoConnections,
    RetryNotes,
    WorkerThreads,
    current_message,
    current_note,
    worker_threads,
)
from eventhub.broker.queue_types import QueueTypeMismatch, TypedQueueBroker
from eventhub.broker.setup import build, declare_queues, get_broker, register_actor, setup, uses_rabbitmq
from eventhub.broker.urls import broker_parameters, split_broker_urls

__all__ = [
    "ConfirmingPublisher",
    "QueueTypeMismatch",
    "TypedQueueBroker",
    "DjangoConnections",
    "RetryNotes",
    "broker_parameters",
    "build",
    "WorkerThreads",
    "current_message",
    "current_note",
    "declare_queues",
    "drain_embedded",
    "enqueue_retry",
    "ensure_embedded_worker",
    "finish_embedded",
    "get_broker",
    "is_embedded",
    "publisher_for",
    "split_broker_urls",
    "register_actor",
    "setup",
    "time_limit",
    "uses_rabbitmq",
    "worker_threads",
]
