"""OpenTelemetry spans for emit, publish, deliver and each attempt, when ``opentelemetry-api`` is installed.

Without it (or with ``EVENTHUB["TRACING_SPANS"] = False``) every function here
does nothing and imports nothing: the trace context still travels with events,
handlers, webhooks and AMQP messages (eventhub.tracing.context). With it, but
with no SDK configured (no tracer provider set), no span is started either: the
API's no-op spans were not free (about a seventh of a worker's time on batch
messages in bench/), and they would only have carried the context that travels
anyway. A provider set later, at any time, is used from the next span on.
"""

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from eventhub.conf import eventhub_settings
from eventhub.tracing.context import TraceContext, from_headers, incoming_context, parse

logger = logging.getLogger(__name__)

TRACER_NAME = "eventhub"
_UNSET = object()
_otel: Any = _UNSET


def _api() -> Any:
    """The OpenTelemetry API modules (a small namespace), or None; imported on first use only."""
    global _otel
    if not eventhub_settings.TRACING_SPANS:
        return None
    if _otel is _UNSET:
        try:
            from opentelemetry import context as otel_context
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            _otel = None
        else:
            _otel = _Otel(trace, otel_context, TraceContextTextMapPropagator())
    return _otel


class _Otel:
    def __init__(self, trace: Any, context: Any, propagator: Any) -> None:
        self.trace, self.context, self.propagator = trace, context, propagator

    def extract(self, parent: TraceContext | None) -> Any:
        return self.propagator.extract(parent.headers()) if parent else None

    def span_context(self, parent: TraceContext) -> Any:
        return self.trace.get_current_span(self.extract(parent)).get_span_context()

    def current(self) -> TraceContext | None:
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return from_headers(carrier)


def enabled() -> bool:
    """Whether spans are made (OpenTelemetry's API is installed, TRACING_SPANS is on and a tracer
    provider is set)."""
    return _recording() is not None


def _recording() -> Any:
    """The OpenTelemetry API when a tracer provider is set (an SDK's), else None."""
    otel = _api()
    if otel is None or isinstance(otel.trace.get_tracer_provider(), otel.trace.ProxyTracerProvider):
        return None
    return otel


def current() -> TraceContext | None:
    """The trace context to emit in: the active span's, else the incoming request's."""
    otel = _api()
    if otel is not None:
        active = otel.current()
        if active is not None:
            return active
    return incoming_context()


@contextmanager
def span(
    name: str,
    *,
    kind: str = "INTERNAL",
    parent: TraceContext | None = None,
    links: Iterable[TraceContext] = (),
    attributes: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """A span named ``name``, child of ``parent`` (default: the active span, else the incoming request's).

    Yields the OpenTelemetry span, or None when spans are off. An exception raised
    inside is recorded on the span and raised on.
    """
    otel = _recording()
    if otel is None:
        yield None
        return
    if parent is None and not otel.trace.get_current_span().get_span_context().is_valid:
        parent = incoming_context()
    tracer = otel.trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        context=otel.extract(parent),
        kind=getattr(otel.trace.SpanKind, kind),
        links=[otel.trace.Link(otel.span_context(link)) for link in links],
        attributes=attributes or {},
    ) as made:
        yield made


def set_attributes(made: Any, **attributes: Any) -> None:
    """Add attributes to a span ``span()`` yielded (nothing when spans are off)."""
    if made is not None:
        made.set_attributes({f"eventhub.{k}": v for k, v in attributes.items() if v is not None})


def mark_failed(made: Any, error: str) -> None:
    """Set an error status on a span ``span()`` yielded, when ``error`` is not empty."""
    otel = _api()
    if made is not None and error and otel is not None:
        made.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, error[:500]))


def outgoing_headers(envelope: dict[str, Any]) -> dict[str, str]:
    """``traceparent``/``tracestate`` for a request or message that carries ``envelope`` onwards.

    The active span's (the attempt) when spans are on, else the event's own.
    """
    otel = _api()
    active = otel.current() if otel is not None else None
    if active is None:
        active = parse(envelope.get("traceparent"), envelope.get("tracestate", ""))
    return active.headers() if active else {}
