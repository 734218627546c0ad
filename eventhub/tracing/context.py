"""W3C trace context (``traceparent``, ``tracestate``): parsing, and the context of the current request.

An event remembers the trace context of where it was emitted, so that the work
it causes in other services joins the same trace. Where that is:

* an OpenTelemetry span active in the emitting code (see eventhub.tracing.spans),
* else the incoming ``traceparent`` header of the current HTTP request
  (:class:`eventhub.tracing.middleware.TraceContextMiddleware` remembers it),
* else nothing: the event has no trace context.

The ingest API gives each event its CloudEvents ``traceparent`` extension, else
the request's header. Nothing here imports OpenTelemetry.
"""

import contextvars
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

TRACEPARENT_LENGTH = 55
TRACESTATE_LIMIT = 512
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_TRACESTATE_MEMBER = re.compile(
    r"^[a-z0-9][_0-9a-z\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$"
)


@dataclass(frozen=True)
class TraceContext:
    """A valid ``traceparent`` and its ``tracestate`` ("" when none)."""

    traceparent: str
    tracestate: str = ""

    @property
    def trace_id(self) -> str:
        """The 32 hex digits that name the trace."""
        return self.traceparent[3:35]

    def headers(self) -> dict[str, str]:
        """As HTTP or AMQP headers."""
        return {
            "traceparent": self.traceparent,
            **({"tracestate": self.tracestate} if self.tracestate else {}),
        }


def parse(traceparent: object, tracestate: object = "") -> TraceContext | None:
    """The context, or None when ``traceparent`` is absent or not a valid version-00 (or later) header.

    As the W3C spec asks, an invalid traceparent is ignored (not an error), and an
    invalid or oversized tracestate is dropped while the traceparent is kept.
    """
    if not isinstance(traceparent, str):
        return None
    found = _TRACEPARENT.match(traceparent.strip())
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    # Later versions may append fields; we keep (and pass on) the version-00 part only.
    return TraceContext(f"{version}-{trace_id}-{parent_id}-{flags}", _clean_state(tracestate))


def _clean_state(tracestate: object) -> str:
    if not isinstance(tracestate, str) or len(tracestate) > TRACESTATE_LIMIT:
        return ""
    members = [m.strip() for m in tracestate.split(",") if m.strip()]
    if len(members) > 32 or not all(_TRACESTATE_MEMBER.match(m) for m in members):
        return ""
    return ",".join(members)


def from_headers(headers: Mapping[str, str]) -> TraceContext | None:
    """The context in ``traceparent``/``tracestate`` headers (names in any case)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return parse(lowered.get("traceparent"), lowered.get("tracestate", ""))


def trace_id_of(traceparent: str) -> str:
    """The trace id inside a stored traceparent, or ""."""
    found = parse(traceparent)
    return found.trace_id if found else ""


_incoming: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "eventhub_incoming_trace", default=None
)


@contextmanager
def incoming(context: TraceContext | None) -> Iterator[None]:
    """Within the block, ``context`` is the trace context events are emitted in (when no span is active)."""
    token = _incoming.set(context)
    try:
        yield
    finally:
        _incoming.reset(token)


def incoming_context() -> TraceContext | None:
    """The trace context the current request (or ``incoming`` block) came with."""
    return _incoming.get()
