"""Small builders for test data: event types, routes and finished deliveries with sensible defaults."""

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from eventhub import hooks
from eventhub.models import Attempt, Delivery, Event, EventType, Route, SignalHook


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


def make_delivery(
    route,
    *,
    status="succeeded",
    subject="",
    ago=timedelta(seconds=10),
    latency_ms=50.0,
    error="",
    attempts=1,
    external_id=None,
) -> Delivery:
    """An event and one delivery of it through ``route``, as a worker would have left it."""
    created = timezone.now() - ago
    event = Event.objects.create(
        event_type=route.event_type,
        type=route.event_type.name,
        source="/test",
        subject=subject,
        time=created,
        data={"n": 1},
        external_id=external_id,
    )
    finished = (
        created + timedelta(milliseconds=latency_ms) if status in ("succeeded", "dead", "retrying") else None
    )
    delivery = Delivery.objects.create(
        event=event,
        route=route,
        status=status,
        attempts=attempts,
        last_error=error,
        created_at=created,
        finished_at=finished,
        duration_ms=latency_ms if finished else None,
    )
    for n in range(1, attempts + 1):
        ok = status == "succeeded" and n == attempts
        Attempt.objects.create(
            delivery=delivery,
            number=n,
            started_at=created,
            finished_at=finished or created,
            duration_ms=5,
            worker="host:1/Thread-1",
            succeeded=ok,
            error="" if ok else error,
        )
    return delivery


def signal_hook(event_type: EventType, model: type | None = None, **fields: Any) -> SignalHook:
    """A SignalHook row on ``model`` (default: the demo shop's Order), checked as the admin checks it."""
    from shop.models import Order  # the demo shop is a test dependency only of hook tests

    if "payload" not in fields and not fields.get("payload_fields"):
        fields["payload"] = "all"
    hook = SignalHook(
        name=fields.pop("name", f"hook {event_type.name}"),
        content_type=ContentType.objects.get_for_model(model or Order),
        event_type=event_type,
        **fields,
    )
    hook.full_clean()
    hooks.check_hook(hook)
    hook.save()
    return hook


def events_of(type_name: str) -> list[Event]:
    """The stored events of one type, oldest first."""
    return list(Event.objects.filter(type=type_name).order_by("time", "created_at"))


def pending_deliveries(
    route: Route, n: int, *, age_seconds: float = 60, status: str = "pending"
) -> list[Delivery]:
    """``n`` deliveries written ``age_seconds`` ago and never sent (as after a crash)."""
    created = timezone.now() - timedelta(seconds=age_seconds)
    rows = []
    for _ in range(n):
        event = Event.objects.create(
            event_type=route.event_type, type=route.event_type.name, source="/t", time=created
        )
        rows.append(Delivery(event=event, route=route, created_at=created, status=status))
    return Delivery.objects.bulk_create(rows)
