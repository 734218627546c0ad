"""Django middleware: events emitted while serving a request remember the request's ``traceparent``."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from eventhub.tracing.context import from_headers, incoming


class TraceContextMiddleware:
    """Keep the request's W3C trace context for emit (an OpenTelemetry span, when active, wins)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with incoming(from_headers(request.headers)):
            return self.get_response(request)
