"""Small builders for test data: event types and routes with sensible defaults."""

import uuid
from typing import Any

from eventhub.models import EventType, Route


def event_type(name: str | None = None, **fields: Any) -> EventType:
    """An active event type with a unique dotted name unless given."""
    return EventType.objects.create(name=name or f"test.t{uuid.uuid4().hex[:8]}", **fields)


def route(event_type: EventType, target: str, **fields: Any) -> Route:
    """An enabled handler route to ``target`` with fast retries."""
    defaults: dict[str, Any] = {
        "name": f"route-{uuid.uuid4().hex[:8]}",
        "min_backoff_ms": 10,
        "max_backoff_ms": 50,
    }
    defaults.update(fields)
    return Route.objects.create(event_type=event_type, target=target, **defaults)
