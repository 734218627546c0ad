"""HTTP views of the ingest API: thin, errors as RFC 9457 problem details."""

import logging
from http import HTTPStatus
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from eventhub import tracing
from eventhub.conf import eventhub_settings
from eventhub.errors import InvalidEventData, UnknownEventType
from eventhub.ingest import openapi, tokens
from eventhub.ingest import service as ingest
from eventhub.ingest.cloudevents import (
    BATCH,
    MalformedJson,
    NotACloudEvent,
    TooDeep,
    UnsupportedData,
    media_type,
)

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
PROBLEM_URI = "urn:eventhub:problem:"

# Exception class -> (status, problem slug, title). The first match wins.
PROBLEMS: list[tuple[type[BaseException], int, str, str]] = [
    (tokens.MissingToken, 401, "missing-token", "API token required"),
    (tokens.WrongToken, 401, "invalid-token", "Invalid API token"),
    (tokens.ExpiredToken, 401, "expired-token", "API token expired"),
    (tokens.RevokedToken, 403, "revoked-token", "API token revoked"),
    (ingest.SourceNotAllowed, 403, "source-not-allowed", "Source not allowed for this token"),
    (ingest.TypeNotAllowed, 403, "type-not-allowed", "Event type not allowed for this token"),
    (ingest.IdReused, 409, "id-reused", "Event id reused with different content"),
    (tokens.RateLimited, 429, "rate-limited", "Too many events for this token"),
    (MalformedJson, 400, "malformed-json", "Malformed JSON"),
    (TooDeep, 400, "too-deep", "JSON nested too deep"),
    (NotACloudEvent, 400, "not-a-cloudevent", "Not a CloudEvent"),
    (UnsupportedData, 415, "unsupported-data", "Unsupported data content type"),
    (UnknownEventType, 422, "unknown-event-type", "Unknown event type"),
    (InvalidEventData, 422, "invalid-event-data", "Event data does not match the schema"),
]


class BodyTooLarge(Exception):
    """The request body is over EVENTHUB["INGEST_MAX_BYTES"]."""


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JsonResponse:
    """An ``application/problem+json`` response."""
    body = {"type": PROBLEM_URI + slug, "title": title, "status": status, "detail": detail, **extra}
    return JsonResponse(body, status=status, content_type=PROBLEM_TYPE)


@csrf_exempt
def events(request: HttpRequest) -> HttpResponse:
    """POST /api/events: receive CloudEvents (structured, binary or batch mode)."""
    if request.method != "POST":
        response = problem(405, "method-not-allowed", "Method not allowed", "Use POST to send events.")
        response["Allow"] = "POST"
        return response
    try:
        # Events without their own traceparent (CloudEvents extension) join the call's trace.
        with tracing.incoming(tracing.from_headers(request.headers)):
            accepted = ingest.ingest(
                authorization=request.headers.get("Authorization"),
                content_type=request.headers.get("Content-Type"),
                headers={k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")},
                body=read_body(request, eventhub_settings.INGEST_MAX_BYTES),
            )
    except Exception as exc:
        return problem_for(exc) or unexpected_problem(request, exc)
    status = 202 if any(not a.duplicate for a in accepted) else 200
    if media_type(request.headers.get("Content-Type")) == BATCH:
        return JsonResponse({"events": [a.as_json() for a in accepted]}, status=status)
    return JsonResponse(accepted[0].as_json(), status=status)


def openapi_json(request: HttpRequest) -> HttpResponse:
    """GET /api/openapi.json: the OpenAPI 3.1 description of this API."""
    if request.method not in ("GET", "HEAD"):
        response = problem(405, "method-not-allowed", "Method not allowed", "Use GET.")
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(openapi.document(), json_dumps_params={"indent": 2})


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes without reading more than that."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The body is {declared} bytes; the limit is {limit}.")
    # Read from the stream, not request.body, so Django's own upload limit never applies first.
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f"The body is over the limit of {limit} bytes.")
    return body


def unavailable() -> JsonResponse:
    """503 with Retry-After: the database could not be reached, so the events may not be stored."""
    seconds = eventhub_settings.INGEST_RETRY_AFTER_SECONDS
    response = problem(
        503,
        "database-unavailable",
        "Database unavailable",
        "eventhub cannot reach its database, so the events may not have been stored. Send them again "
        f"with the same ids in {seconds} seconds or later: events received before are recognised.",
    )
    response["Retry-After"] = str(seconds)
    return response


def unexpected_problem(request: HttpRequest, exc: Exception) -> JsonResponse:
    """500, as a problem like every other error; logged and signalled as Django does for a crash."""
    logger.error("Ingest failed: %s", exc, exc_info=exc, extra={"status_code": 500, "request": request})
    got_request_exception.send(sender=None, request=request)
    return problem(
        500,
        "internal-error",
        "Internal server error",
        "The request failed on the server; the events may not have been stored. Send them again with the "
        "same ids: events received before are recognised.",
    )


def problem_for(exc: BaseException) -> JsonResponse | None:
    """The problem response for an ingest error; None for an unexpected exception."""
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("Ingest answered 503: the database is unavailable (%s).", str(exc).strip())
        return unavailable()
    extra: dict[str, Any] = {}
    if isinstance(exc, ingest.RefusedEvent):
        extra["index"] = exc.index
        exc = exc.error
    elif isinstance(exc, NotACloudEvent) and exc.index is not None:
        extra["index"] = exc.index
    if isinstance(exc, BodyTooLarge):
        return problem(413, "body-too-large", "Request body too large", str(exc))
    if isinstance(exc, InvalidEventData):
        extra.update(event_type=exc.event_type, path=exc.path, schema_message=exc.schema_message)
    for cls, status, slug, title in PROBLEMS:
        if isinstance(exc, cls):
            response = problem(status, slug, title, str(exc), **extra)
            if status == HTTPStatus.UNAUTHORIZED:
                response["WWW-Authenticate"] = 'Bearer realm="eventhub"'
            if isinstance(exc, tokens.RateLimited):
                response["Retry-After"] = str(exc.retry_after)
            return response
    return None
