"""eventhub: admin-managed event routing for Django.

    from eventhub import emit, consumer

    emit("order.paid", data={"order_id": 42}, subject="order/42")

    @consumer("billing.invoice")
    def invoice(envelope): ...

The functions are imported lazily so that importing this package never needs
Django's app registry to be ready.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventhub.models import Event

__all__ = ["consumer", "emit", "emit_many"]


def emit(
    type: str,
    data: Any = None,
    *,
    subject: str | None = None,
    source: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> "Event":
    """Emit one event; see :func:`eventhub.outbox.emit.emit`."""
    from eventhub.outbox.emit import emit as _emit

    return _emit(type, data, subject=subject, source=source, traceparent=traceparent, tracestate=tracestate)


def emit_many(events: Any) -> "list[Event]":
    """Emit many events in one transaction; see :func:`eventhub.outbox.emit.emit_many`."""
    from eventhub.outbox.emit import emit_many as _emit_many

    return _emit_many(events)


def consumer(name: str) -> Any:
    """Register a handler under ``name``; see :func:`eventhub.destinations.registry.consumer`."""
    from eventhub.destinations.registry import consumer as _consumer

    return _consumer(name)
