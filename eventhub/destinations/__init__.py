"""Destinations: how a delivery leaves eventhub. One module per kind of route.

Each kind is a callable ``send(*, route, envelope, delivery) -> None`` that returns
on success and raises on failure (DestinationError for a failure with a clear,
recordable message). The delivery runner looks kinds up here.
"""

from collections.abc import Callable
from typing import Any

Sender = Callable[..., None]


class DestinationError(Exception):
    """A destination refused or failed the delivery; the message is recorded on it."""


class PermanentError(DestinationError):
    """A failure that no retry can fix (unknown handler, bad target): the delivery goes dead."""


def sender_for(kind: str) -> Sender:
    """The send function for a route's destination kind."""
    from eventhub.destinations import handler

    senders: dict[str, Any] = {"handler": handler.send}
    try:
        from eventhub.destinations import webhook

        senders["webhook"] = webhook.send
    except ImportError:  # pragma: no cover - arrives with the webhook destination
        pass
    try:
        from eventhub.destinations import amqp

        senders["amqp"] = amqp.send
    except ImportError:  # pragma: no cover - arrives with the AMQP destination
        pass
    if kind not in senders:
        raise PermanentError(f"Destination kind {kind!r} is not available in this worker.")
    return senders[kind]
