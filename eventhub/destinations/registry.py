"""The registry of Python handlers that routes of kind "handler" name."""

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]
_registry: dict[str, Handler] = {}


class UnknownHandler(LookupError):
    """A route names a handler that no loaded module registered."""


def consumer(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated callable as the handler ``name``; it receives the envelope dict.

    Handlers live in an app's ``consumers`` module, which eventhub imports at start-up.
    """
    if not name or not isinstance(name, str):
        raise ValueError("A consumer needs a non-empty name.")

    def register(func: Handler) -> Handler:
        previous = _registry.get(name)
        if previous is not None and previous is not func:
            logger.warning("Handler %r re-registered: %r replaces %r", name, func, previous)
        _registry[name] = func
        return func

    return register


def get_handler(name: str) -> Handler:
    """The handler registered under ``name``; UnknownHandler when there is none."""
    try:
        return _registry[name]
    except KeyError:
        raise UnknownHandler(f"No handler is registered as {name!r} in this worker.") from None


def handler_names() -> list[str]:
    """The names of every handler this process knows, sorted."""
    return sorted(_registry)


def unregister(name: str) -> None:
    """Forget a handler (tests register and remove their own)."""
    _registry.pop(name, None)
