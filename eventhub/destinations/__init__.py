"""Destinations: how a delivery leaves eventhub. One module per kind of route.

Each kind is a callable ``send(*, route, envelope, delivery) -> None`` that returns
on success and raises on failure (DestinationError for a failure with a clear,
recordable message; PermanentError when no retry can help). The worker looks the
kind up with :func:`destination_for`.
"""

from collections.abc import Callable

from eventhub.destinations import amqp, handler, webhook
from eventhub.destinations.addresses import BlockedAddress
from eventhub.destinations.errors import DestinationError, HttpStatusError, PermanentError
from eventhub.destinations.registry import UnknownHandler, consumer, get_handler, handler_names, unregister
from eventhub.destinations.targets import InvalidTarget, check_target

__all__ = [
    "BlockedAddress",
    "DestinationError",
    "HttpStatusError",
    "InvalidTarget",
    "PermanentError",
    "Send",
    "UnknownHandler",
    "check_target",
    "consumer",
    "destination_for",
    "get_handler",
    "handler_names",
    "unregister",
]

Send = Callable[..., None]

_SENDS: dict[str, Send] = {"handler": handler.send, "webhook": webhook.send, "amqp": amqp.send}


def destination_for(kind: str) -> Send:
    """The send function of a route's destination kind."""
    send = _SENDS.get(kind)
    if send is None:
        raise PermanentError(f"Unknown destination kind {kind!r}.")
    return send
