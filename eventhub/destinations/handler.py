"""The handler destination: call a Python function registered with @eventhub.consumer."""

from typing import Any

from eventhub.consumers import UnknownHandler, get_handler
from eventhub.destinations import PermanentError


def send(*, route: Any, envelope: dict[str, Any], delivery: Any) -> None:
    """Run the handler the route names with the event's envelope."""
    try:
        handler = get_handler(route.target)
    except UnknownHandler as exc:
        raise PermanentError(str(exc)) from None
    handler(envelope)
