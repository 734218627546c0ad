"""emit(): validate, write the event and its deliveries (the outbox), send after commit."""

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from eventhub import tracing
from eventhub.conf import eventhub_settings
from eventhub.db import sqlbatch
from eventhub.errors import EmitError
from eventhub.events import match, validate_data
from eventhub.models import Delivery, Event, EventType, Route
from eventhub.outbox import ordering, route_table
from eventhub.outbox.background import send_after_commit
from eventhub.outbox.message import Outgoing, batched

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventSpec:
    """One event to emit, for :func:`emit_many`."""

    type: str
    data: Any = None
    subject: str | None = None
    source: str | None = None
    id: uuid.UUID | None = None
    time: datetime | None = None
    external_id: str | None = None
    datacontenttype: str = "application/json"
    dataschema: str = ""
    extensions: dict[str, Any] | None = None
    api_token_id: int | None = None  # the ingest API token that sent it
    # W3C trace context; None: where emit is called (the active span, else the request's traceparent).
    traceparent: str | None = None
    tracestate: str | None = None


def emit(
    type: str,
    data: Any = None,
    *,
    subject: str | None = None,
    source: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> Event:
    """Emit one event of ``type`` with ``data``; returns the stored Event.

    Validates ``data`` against the type's JSON Schema (InvalidEventData, nothing
    stored, on mismatch; UnknownEventType for an unknown or inactive type), writes
    the event and one delivery per matching enabled route inside the caller's
    transaction, and sends their messages only after that transaction commits.
    The event remembers the W3C trace context it was emitted in, or ``traceparent``.
    """
    spec = EventSpec(
        type=type, data=data, subject=subject, source=source, traceparent=traceparent, tracestate=tracestate
    )
    return emit_many([spec])[0]


def emit_many(events: Iterable[EventSpec | Mapping[str, Any]]) -> list[Event]:
    """Emit many events at once: all are validated first, then written in one go.

    Either every event is stored or none is. Each item is an EventSpec or a mapping
    with the same keys (``type``, ``data``, ``subject``, ``source``).
    """
    specs = [_as_spec(item) for item in events]
    if not specs:
        return []
    types, routes = route_table.types_and_routes({spec.type for spec in specs})
    with tracing.span("eventhub emit", kind="PRODUCER", attributes={"eventhub.events": len(specs)}):
        ambient = tracing.current()  # the emit span's context when spans are on
        stored = [_build_event(spec, types[spec.type], ambient) for spec in specs]
        # Ordered routes number their deliveries under a lock held to commit: not in one statement.
        ordered = ordering.any_ordered(routes, {t.pk for t in types.values()})
        if not ordered and _emitted_in_one_statement(stored, routes):
            return stored
        with transaction.atomic():
            deliveries = _route(stored, routes)
            ordering.number([d for d, _ in deliveries])  # issue 19: ordering per key
            _insert(stored, deliveries)
            transaction.on_commit(partial(_publish, _messages(deliveries), stored))
    return stored


def _insert(events: list[Event], pairs: list[tuple[Delivery, Route]]) -> None:
    """Inside a transaction: one prepared statement on PostgreSQL, Django's bulk inserts elsewhere."""
    if sqlbatch.supported():
        _insert_together(events, pairs)
        return
    Event.objects.bulk_create(events)
    Delivery.objects.bulk_create([d for d, _ in pairs])


def _publish(outgoing: list[Outgoing], events: list[Event]) -> None:
    """Send after commit, in a span linked to the events' trace contexts (when spans are on)."""
    links = {tracing.parse(e.traceparent, e.tracestate) for e in events} - {None}
    deliveries = sum(len(item.delivery_ids) for item in outgoing)
    with tracing.span(
        "eventhub publish", kind="PRODUCER", links=links, attributes={"eventhub.deliveries": deliveries}
    ):
        send_after_commit(outgoing)


def _emitted_in_one_statement(events: list[Event], routes: dict[int, list[Route]]) -> bool:
    """Outside the caller's transaction, write event and delivery rows in one statement and send.

    That statement commits by itself (no BEGIN/COMMIT round trips), so the messages
    go out right after it. False, with nothing done, where this does not apply.
    """
    if not sqlbatch.supported() or transaction.get_connection().in_atomic_block:
        return False
    pairs = _route(events, routes)
    _insert_together(events, pairs)
    _publish(_messages(pairs), events)
    return True


def _messages(pairs: list[tuple[Delivery, Route]]) -> list[Outgoing]:
    """Deliveries emitted together travel together: one message per route (up to MESSAGE_BATCH_MAX).

    Held deliveries get none: the releaser sends them when their route delivers again.
    """
    items = [Outgoing.for_route(d.pk, route) for d, route in pairs if d.status != Delivery.Status.HELD]
    return batched(items, cap=eventhub_settings.MESSAGE_BATCH_MAX)


def _insert_together(events: list[Event], pairs: list[tuple[Delivery, Route]]) -> None:
    statements = [sqlbatch.insert_rows(Event, events)]
    if pairs:
        deliveries = [d for d, _ in pairs]
        statements.append(sqlbatch.insert_rows(Delivery, deliveries, returning=("id", "event", "route")))
    # The same SQL for any number of events: prepared once per connection.
    rows = sqlbatch.execute_together(statements, prepare=True)
    for event in events:
        event._state.adding, event._state.db = False, DEFAULT_DB_ALIAS
    # One delivery per event and route: that pair names the row each id belongs to.
    ids = {(event_id, route_id): pk for pk, event_id, route_id in rows} if pairs else {}
    for delivery, route in pairs:
        delivery.pk = ids[(delivery.event_id, route.pk)]
        delivery._state.adding, delivery._state.db = False, DEFAULT_DB_ALIAS


def _as_spec(item: EventSpec | Mapping[str, Any]) -> EventSpec:
    if isinstance(item, EventSpec):
        return item
    if not isinstance(item, Mapping) or "type" not in item:
        raise EmitError(f"Each event needs at least a 'type'; got {item!r:.200}")
    unknown = set(item) - set(EventSpec.__dataclass_fields__)
    if unknown:
        raise EmitError(f"Unknown event fields: {', '.join(sorted(unknown))}")
    return EventSpec(**item)


def _build_event(spec: EventSpec, event_type: EventType, ambient: tracing.TraceContext | None) -> Event:
    validate_data(event_type.name, event_type.schema, spec.data)
    trace = tracing.parse(spec.traceparent, spec.tracestate or "") if spec.traceparent else ambient
    return Event(
        id=spec.id or uuid.uuid4(),
        event_type=event_type,
        type=event_type.name,
        source=spec.source or eventhub_settings.DEFAULT_SOURCE,
        external_id=spec.external_id,
        subject=spec.subject or "",
        time=spec.time or timezone.now(),
        datacontenttype=spec.datacontenttype,
        dataschema=spec.dataschema,
        extensions=spec.extensions,
        api_token_id=spec.api_token_id,
        data=spec.data,
        traceparent=trace.traceparent if trace else "",
        tracestate=trace.tracestate if trace else "",
    )


def _route(events: list[Event], routes: dict[int, list[Route]]) -> list[tuple[Delivery, Route]]:
    now = timezone.now()
    holding = route_table.holding()
    pairs = []
    for event in events:
        candidates = routes.get(event.event_type_id, ())
        envelope = event.envelope if candidates else None
        for route in candidates:
            if match(route.filter, envelope):
                delivery = build_delivery(event=event, route=route, envelope=envelope, now=now)
                # Issue 18: a route that is open or paused holds its new deliveries from the start, so
                # they cost no message and no worker's time; an ordered one's go through the worker's
                # gate, which keeps their turn. A copy a second old only sends a few to that gate.
                if route.pk in holding and delivery.ordering_key is None:
                    delivery.status = Delivery.Status.HELD
                pairs.append((delivery, route))
    return pairs


def build_delivery(*, event: Event, route: Route, envelope: dict[str, Any], now: datetime) -> Delivery:
    """A new delivery of ``event`` through ``route`` (unsaved): its ordering key and transform version set."""
    return Delivery(
        event=event,
        route=route,
        created_at=now,
        ordering_key=ordering.key_of(route, envelope),
        transform_version=route.transform_version,
    )
