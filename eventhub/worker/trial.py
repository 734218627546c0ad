"""Trying a route from its admin page, before saving it or before real events flow.

* :func:`match_recent`: which of the last N events of a type a filter (and ordering
  key) would match: a count and a few examples. Reads only.
* :func:`preview_transform`: what a transform makes of the latest event of a type.
* :func:`send_trial`: send a sample event through a saved route's real destination
  (the same send function, transport rules and transform as a delivery) and record
  the outcome as a :class:`~eventhub.models.TrialDelivery`, which no figure counts.
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from eventhub import tracing
from eventhub.conf import eventhub_settings
from eventhub.destinations import destination_for
from eventhub.events import Transform, check_transform, match, render_key, validate_data, validate_pattern
from eventhub.models import Event, EventType, Route, TrialDelivery

EXAMPLES = 5
EXCERPT = 500
TRY_PERMISSION = "eventhub.change_route"
TEST_SOURCE = "/eventhub/route-test"


class NoRecentEvent(LookupError):
    """There is no event of this type to preview on."""


@dataclass(frozen=True)
class MatchReport:
    """How many of the ``examined`` latest events matched, and the first few that did."""

    examined: int
    matched: int
    examples: list[dict[str, Any]] = field(default_factory=list)


def check_can_try(user) -> None:
    """PermissionDenied unless ``user`` may change routes (and so try them)."""
    if user is None or not user.is_active or not user.has_perm(TRY_PERMISSION):
        raise PermissionDenied("You need permission to change routes to try one.")


def match_recent(*, event_type: EventType, pattern: Any, ordering_key: str = "", limit: int) -> MatchReport:
    """Match ``pattern`` against the latest ``limit`` events of ``event_type`` (PatternError if malformed)."""
    validate_pattern(pattern)
    limit = max(1, min(limit, eventhub_settings.TRY_RECENT_EVENTS_MAX))
    events = list(Event.objects.filter(type=event_type.name).order_by("-time")[:limit])
    matched = 0
    examples = []
    for event in events:
        envelope = event.envelope
        if not match(pattern, envelope):
            continue
        matched += 1
        if len(examples) < EXAMPLES:
            examples.append(_example(event, envelope, ordering_key))
    return MatchReport(examined=len(events), matched=matched, examples=examples)


def _example(event: Event, envelope: dict[str, Any], ordering_key: str) -> dict[str, Any]:
    return {
        "id": str(event.pk),
        "subject": event.subject,
        "time": envelope["time"],
        "url": event.get_absolute_url(),
        "ordering_key": render_key(ordering_key, envelope) if ordering_key else None,
    }


def preview_transform(*, event_type: EventType, spec: Any) -> dict[str, Any]:
    """The body and static headers ``spec`` makes of the latest event of ``event_type``.

    TransformError when ``spec`` is malformed; NoRecentEvent when the type has no event yet.
    """
    transform = Transform(check_transform(spec))
    event = Event.objects.filter(type=event_type.name).order_by("-time").first()
    if event is None:
        raise NoRecentEvent(f"No {event_type.name} event yet to preview the transform on.")
    envelope = event.envelope
    return {"event_id": str(event.pk), "body": transform.body(envelope), "headers": transform.headers}


def sample_envelope(*, route: Route, data: Any) -> dict[str, Any]:
    """A test envelope of the route's event type (data checked against its schema: InvalidEventData)."""
    event_type = route.event_type
    validate_data(event_type.name, event_type.schema, data)
    trace = tracing.current()
    event = Event(
        id=uuid.uuid4(),
        event_type=event_type,
        type=event_type.name,
        source=TEST_SOURCE,
        subject="route-test",
        time=timezone.now(),
        data=data,
        traceparent=trace.traceparent if trace else "",
        tracestate=trace.tracestate if trace else "",
    )
    # A CloudEvents extension attribute, so that receivers can tell a test from a real event.
    return {**event.envelope, "eventhubtest": True}


def send_trial(*, route: Route, data: Any, user) -> TrialDelivery:
    """Send a test event with ``data`` through ``route``'s destination now; the recorded outcome.

    Raises PermissionDenied without the permission to change routes, and
    InvalidEventData when ``data`` does not satisfy the type's schema.
    """
    check_can_try(user)
    envelope = sample_envelope(route=route, data=data)
    # Recorded before it is sent (its id is part of the webhook-id), so even a send that never
    # returns leaves a record: "not finished" until the outcome below replaces it.
    trial = TrialDelivery.objects.create(
        route=route,
        user=user if user.pk else None,
        username=user.get_username(),
        envelope=envelope,
        transform_version=route.transform_version,
        error="Not finished: the test send did not return.",
    )
    started = time.monotonic()
    with tracing.span("eventhub test send", parent=tracing.parse(envelope.get("traceparent"))) as span:
        try:
            reply = destination_for(route.destination_kind)(
                route=route,
                envelope=envelope,
                delivery=trial,
                transform=Transform(route.transform or {}, route.transform_version),
            )
        except Exception as exc:  # noqa: BLE001 - shown to the operator, as a delivery would record it
            trial.error = f"{type(exc).__name__}: {exc}"[:4000]
            tracing.mark_failed(span, trial.error)
        else:
            trial.succeeded, trial.error = True, ""
            trial.response_status, trial.response_excerpt = _reply_parts(reply)
    trial.duration_ms = (time.monotonic() - started) * 1000
    trial.save(update_fields=["succeeded", "error", "response_status", "response_excerpt", "duration_ms"])
    return trial


def _reply_parts(reply: Any) -> tuple[int | None, str]:
    status = getattr(reply, "status", None)
    if status is not None:
        return status, getattr(reply, "excerpt", "")[:EXCERPT]
    return None, ("" if reply is None else repr(reply)[:EXCERPT])
