"""The handler destination: call a Python function registered with @eventhub.consumer."""

from typing import Any

from eventhub.destinations.errors import PermanentError
from eventhub.destinations.registry import UnknownHandler, get_handler


def send(*, route: Any, envelope: dict[str, Any], delivery: Any, transform: Any = None) -> Any:
    """Run the handler the route names with the event's envelope (handlers take no transform)."""
    try:
        handler = get_handler(route.target)
    except UnknownHandler as exc:
        raise PermanentError(str(exc)) from None
    return handler(envelope)
