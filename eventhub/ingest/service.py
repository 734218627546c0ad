"""The ingest service behind ``POST /api/events``: authenticate, parse, emit once.

Events from other languages arrive here as CloudEvents. A token may send only from the
sources and of the event types an operator chose for it (checked in that order, before
anything about the type is told, so types cannot be probed), within its rate limit. A
CloudEvent ``id`` already received from the same ``source`` is not emitted again: the
caller learns it was a duplicate and gets the stored event's id, so producers can retry
freely; the same id with different content is refused (409). Since a source belongs to
the tokens allowed to send it, one producer cannot shadow another's events.
"""

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError

from eventhub.errors import UnknownEventType
from eventhub.events import source_allowed, validate_data
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


class SourceNotAllowed(PermissionError):
    """The token may not send events from this source."""


class IdReused(ValueError):
    """A (source, id) received before, now with different content."""


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

    Raises tokens.TokenError, cloudevents.NotACloudEvent / UnsupportedData, tokens.RateLimited,
    or RefusedEvent wrapping SourceNotAllowed, TypeNotAllowed, UnknownEventType,
    InvalidEventData or IdReused.
    Either every new event of the request is stored or none is.
    """
    api_token = tokens.authenticate(authorization)
    events = parse_request(content_type=content_type, headers=headers, body=body)
    check_events(events, api_token=api_token)
    tokens.record_use(api_token, events=len(events))
    return emit_once(events, api_token=api_token)


def check_events(events: Sequence[CloudEvent], *, api_token: ApiToken) -> None:
    """Refuse sources and types the token may not send, then unknown or inactive types and invalid data."""
    patterns = tokens.allowed_source_patterns(api_token)
    allowed = tokens.allowed_type_names(api_token)
    types = {t.name: t for t in EventType.objects.filter(name__in={e.type for e in events} & allowed)}
    for index, event in enumerate(events):
        try:
            if not source_allowed(patterns, event.source):
                raise SourceNotAllowed(
                    f"This token may not send events from source {event.source!r}; it may send from: "
                    f"{', '.join(patterns) or 'no source yet (set its allowed sources in the admin)'}."
                )
            if event.type not in allowed:
                raise TypeNotAllowed(f"This token may not send events of type {event.type!r}.")
            event_type = types.get(event.type)
            if event_type is None or not event_type.active:
                raise UnknownEventType(f"Unknown or inactive event type {event.type!r}.")
            validate_data(event_type.name, event_type.schema, event.data)
        except (UnknownEventType, PermissionError, ValueError) as exc:
            raise RefusedEvent(index, exc) from exc


def emit_once(events: Sequence[CloudEvent], *, api_token: ApiToken | None = None) -> list[Accepted]:
    """Emit the events whose (source, id) was never received; report every one.

    RefusedEvent(IdReused) when an id comes again with different content.
    """
    for attempt in range(RACE_RETRIES):
        known = stored_events(events)
        check_reuse(events, known)
        fresh = _first_of_each(events, known)
        try:
            emitted = emit_many([_spec(e, api_token) for e in fresh])
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise
            continue
        created = {(e.source, e.external_id): e.id for e in emitted}
        return _report(events, {key: stored.pk for key, stored in known.items()}, created)
    raise AssertionError("unreachable")  # pragma: no cover


def stored_events(events: Sequence[CloudEvent]) -> dict[Key, Event]:
    """The stored event for every (source, id) of ``events`` received before."""
    keys = {(e.source, e.id) for e in events}
    rows = Event.objects.filter(
        external_id__in={k[1] for k in keys}, source__in={k[0] for k in keys}
    ).only("id", "source", "external_id", "type", "subject", "time", "datacontenttype", "dataschema",
           "extensions", "data")  # fmt: skip
    return {(row.source, row.external_id): row for row in rows if (row.source, row.external_id) in keys}


def check_reuse(events: Sequence[CloudEvent], known: Mapping[Key, Event]) -> None:
    """Raise RefusedEvent(IdReused) for an event whose (source, id) came before with other content."""
    first: dict[Key, CloudEvent] = {}
    for index, event in enumerate(events):
        key = (event.source, event.id)
        stored = known.get(key)
        earlier = first.setdefault(key, event)
        same = _same_as_stored(event, stored) if stored is not None else _content(event) == _content(earlier)
        if not same:
            where = f"event {stored.pk}" if stored is not None else "an earlier event of this request"
            raise RefusedEvent(index, IdReused(
                f"The id {event.id!r} from {event.source!r} was already used for {where} with different "
                "content; a new event needs a new id."
            ))  # fmt: skip


def _content(event: CloudEvent) -> tuple:
    # Not ``time``: producers often stamp each attempt anew, and a retry is still the same event.
    return (event.type, event.subject or "", _canonical(event.data), event.datacontenttype,
            event.dataschema or "", _canonical(event.extensions or {}))  # fmt: skip


def _same_as_stored(event: CloudEvent, stored: Event) -> bool:
    ours = (stored.type, stored.subject, _canonical(stored.data), stored.datacontenttype, stored.dataschema,
            _canonical(stored.extensions or {}))  # fmt: skip
    return _content(event) == ours


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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


def _spec(event: CloudEvent, api_token: ApiToken | None) -> EventSpec:
    return EventSpec(
        type=event.type,
        data=event.data,
        subject=event.subject,
        source=event.source,
        time=event.time,
        external_id=event.id,
        datacontenttype=event.datacontenttype,
        dataschema=event.dataschema or "",
        extensions=event.extensions,
        api_token_id=api_token.pk if api_token is not None else None,
        traceparent=event.traceparent,  # None: the request's own traceparent (see views.events)
        tracestate=event.tracestate,
    )
