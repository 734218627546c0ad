"""The ingest service behind ``POST /api/events``: authenticate, parse, emit once.

Events from other languages arrive here as CloudEvents. A token may send only the
event types an operator chose for it. A CloudEvent ``id`` already received from the
same ``source`` is not emitted again: the caller learns it was a duplicate and gets
the stored event's id, so producers can retry freely.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from eventhub.errors import UnknownEventType
from eventhub.events import validate_data
from eventhub.ingest import tokens
from eventhub.ingest.cloudevents import CloudEvent, parse_request
from eventhub.models import ApiToken, Event, EventType
from eventhub.outbox import EventSpec, emit_many

logger = logging.getLogger(__name__)

# Concurrent requests with the same event can both miss the duplicate check; the
# loser hits the unique constraint and simply looks again.
RACE_RETRIES = 3

Key = tuple[str, str]


class TypeNotAllowed(PermissionError):
    """The token may not send this event type."""


class RefusedEvent(Exception):
    """One event of a request was refused; ``index`` is its position, ``error`` the reason."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


@dataclass(frozen=True)
class Accepted:
    """One received event: its CloudEvents id and source, the stored event's id, and
    whether it had been received before."""

    id: str
    source: str
    event_id: uuid.UUID
    duplicate: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "event_id": str(self.event_id),
            "duplicate": self.duplicate,
        }


def ingest(
    *, authorization: str | None, content_type: str | None, headers: Mapping[str, str], body: bytes
) -> list[Accepted]:
    """Authenticate the request, read its CloudEvents and emit the ones not seen before.

    Raises tokens.TokenError, cloudevents.NotACloudEvent / UnsupportedData, or
    RefusedEvent wrapping UnknownEventType, TypeNotAllowed or InvalidEventData.
    Either every new event of the request is stored or none is.
    """
    api_token = tokens.authenticate(authorization)
    events = parse_request(content_type=content_type, headers=headers, body=body)
    check_events(events, api_token=api_token)
    accepted = emit_once(events)
    note_token_used(api_token)
    return accepted


def note_token_used(api_token: ApiToken) -> None:
    """Record when the token last sent events: bookkeeping, so a failure never fails the request.

    The events are stored by then; answering with an error would make the producer
    send them again for the sake of a timestamp.
    """
    try:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now())
    except DatabaseError as exc:
        logger.warning("Could not record the use of API token %s: %s", api_token.prefix, exc)


def check_events(events: Sequence[CloudEvent], *, api_token: ApiToken) -> None:
    """Refuse unknown or inactive types, types the token may not send, and invalid data."""
    types = {t.name: t for t in EventType.objects.filter(name__in={e.type for e in events})}
    allowed = tokens.allowed_type_names(api_token)
    for index, event in enumerate(events):
        event_type = types.get(event.type)
        try:
            if event_type is None or not event_type.active:
                raise UnknownEventType(f"Unknown or inactive event type {event.type!r}.")
            if event.type not in allowed:
                raise TypeNotAllowed(f"This token may not send events of type {event.type!r}.")
            validate_data(event_type.name, event_type.schema, event.data)
        except (UnknownEventType, TypeNotAllowed, ValueError) as exc:
            raise RefusedEvent(index, exc) from exc


def emit_once(events: Sequence[CloudEvent]) -> list[Accepted]:
    """Emit the events whose (source, id) was never received; report every one."""
    for attempt in range(RACE_RETRIES):
        known = stored_ids(events)
        fresh = _first_of_each(events, known)
        try:
            emitted = emit_many([_spec(e) for e in fresh])
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise
            continue
        created = {(e.source, e.external_id): e.id for e in emitted}
        return _report(events, known, created)
    raise AssertionError("unreachable")  # pragma: no cover


def stored_ids(events: Sequence[CloudEvent]) -> dict[Key, uuid.UUID]:
    """The stored event id for every (source, id) of ``events`` received before."""
    keys = {(e.source, e.id) for e in events}
    rows = Event.objects.filter(
        external_id__in={k[1] for k in keys}, source__in={k[0] for k in keys}
    ).values_list("source", "external_id", "id")
    return {(source, ext): pk for source, ext, pk in rows if (source, ext) in keys}


def _first_of_each(events: Sequence[CloudEvent], known: Mapping[Key, uuid.UUID]) -> list[CloudEvent]:
    seen: set[Key] = set(known)
    fresh = []
    for event in events:
        if (event.source, event.id) not in seen:
            seen.add((event.source, event.id))
            fresh.append(event)
    return fresh


def _report(
    events: Sequence[CloudEvent], known: Mapping[Key, uuid.UUID], created: Mapping[Key, uuid.UUID]
) -> list[Accepted]:
    reported: set[Key] = set()
    accepted = []
    for event in events:
        key = (event.source, event.id)
        duplicate = key in known or key in reported
        reported.add(key)
        accepted.append(Accepted(event.id, event.source, known.get(key) or created[key], duplicate))
    return accepted


def _spec(event: CloudEvent) -> EventSpec:
    return EventSpec(
        type=event.type,
        data=event.data,
        subject=event.subject,
        source=event.source,
        time=event.time,
        external_id=event.id,
        datacontenttype=event.datacontenttype,
        traceparent=event.traceparent,  # None: the request's own traceparent (see views.events)
        tracestate=event.tracestate,
    )
