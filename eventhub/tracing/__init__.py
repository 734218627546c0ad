"""W3C trace context across services, and OpenTelemetry spans when its API is installed.

``context``: parsing ``traceparent``/``tracestate`` and the current request's
context; ``spans``: optional OpenTelemetry spans (emit, publish, deliver, attempt);
``middleware``: remembers each request's incoming ``traceparent``.
"""

from eventhub.tracing.context import (
    TraceContext,
    from_headers,
    incoming,
    incoming_context,
    parse,
    trace_id_of,
)
from eventhub.tracing.spans import current, enabled, mark_failed, outgoing_headers, set_attributes, span

__all__ = [
    "TraceContext",
    "current",
    "enabled",
    "from_headers",
    "incoming",
    "incoming_context",
    "mark_failed",
    "outgoing_headers",
    "parse",
    "set_attributes",
    "span",
    "trace_id_of",
]
