"""Destinations: how a delivery leaves eventhub. One module per kind of route.

Each kind is a callable ``send(*, route, envelope, delivery) -> None`` that returns
on success and raises on failure (DestinationError for a failure with a clear,
recordable message). The delivery runner looks kinds up here.
"""

from collections.abc import Callable
from importlib import import_module

Sender = Callable[..., None]


class DestinationError(Exception):
    """A destination refused or failed the delivery; the message is recorded on it."""


class PermanentError(DestinationError):
    """A failure that no retry can fix (unknown handler, bad target): the delivery goes dead."""


_MODULES = {
    "handler": "eventhub.destinations.handler",
    "webhook": "eventhub.destinations.webhook",
    "amqp": "eventhub.destinations.amqp",
}


def sender_for(kind: str) -> Sender:
    """The send function for a route's destination kind (modules load on first use)."""
    module = _MODULES.get(kind)
    if module is None:
        raise PermanentError(f"Unknown destination kind {kind!r}.")
    return import_module(module).send
