"""The one builder of CloudEvents 1.0 envelopes."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventhub.models import Event


def envelope_of(event: "Event") -> dict[str, Any]:
    """The CloudEvents envelope (structured JSON mode) of a stored event."""
    envelope: dict[str, Any] = {
        "specversion": event.specversion,
        "id": event.external_id or str(event.id),
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": event.datacontenttype,
        "data": event.data,
    }
    if event.subject:
        envelope["subject"] = event.subject
    if event.dataschema:
        envelope["dataschema"] = event.dataschema
    for name, value in (event.extensions or {}).items():
        envelope.setdefault(name, value)  # never over a core attribute
    # The CloudEvents distributed-tracing extension: where the event was emitted, for the next hop.
    if event.traceparent:
        envelope["traceparent"] = event.traceparent
        if event.tracestate:
            envelope["tracestate"] = event.tracestate
    return envelope
