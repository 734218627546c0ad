"""Reading CloudEvents 1.0 from HTTP requests: structured, binary and batch content modes.

Pure parsing, no database: a request's content type, ``ce-*`` headers and body become
a list of :class:`CloudEvent`, or an error saying exactly what is wrong. Everything
accepted here can be stored in PostgreSQL and SQLite as it is (lengths fit the
columns, no NUL characters or lone surrogates, no NaN or Infinity).
"""

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from eventhub.tracing import parse as parse_trace

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SPECVERSION = "1.0"
# Longest accepted value per attribute: the widths of the Event columns they land in.
MAX_LENGTHS = {
    "id": 200,
    "source": 500,
    "type": 200,
    "subject": 500,
    "datacontenttype": 100,
    "dataschema": 500,
}
REQUIRED = ("id", "source", "type")
JSON_DEFAULT = "application/json"
CORE = frozenset({*MAX_LENGTHS, "specversion", "time", "data", "data_base64"})
# The distributed-tracing extension: kept as the event's trace context, not as extensions.
TRACING = frozenset({"traceparent", "tracestate"})
# Extension attributes (CloudEvents 1.0: lower-case letters and digits), kept with the event.
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,50}$")
MAX_EXTENSIONS = 32
MAX_EXTENSION_LENGTH = 2000
# Deeper data is refused: every page and consumer that renders it recursively would fail.
MAX_DEPTH = 64


class NotACloudEvent(ValueError):
    """The request is not a CloudEvent (or a batch of them); ``index`` says which one in a batch."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class MalformedJson(NotACloudEvent):
    """The body (or a JSON data payload) is not valid JSON."""


class TooDeep(NotACloudEvent):
    """JSON nested deeper than eventhub accepts."""


class UnsupportedData(ValueError):
    """Binary data in a media type eventhub cannot keep (it stores JSON and text)."""


@dataclass(frozen=True)
class CloudEvent:
    """One received event, attributes checked."""

    id: str
    source: str
    type: str
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str = JSON_DEFAULT
    dataschema: str | None = None
    extensions: dict[str, Any] | None = None
    data: Any = None
    # The distributed-tracing extension (W3C trace context); kept only when valid.
    traceparent: str | None = None
    tracestate: str | None = None


def media_type(content_type: str | None) -> str:
    """``text/plain; charset=utf-8`` -> ``text/plain``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_request(*, content_type: str | None, headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """The events of one HTTP request, in the content mode its content type selects.

    ``headers`` holds the request's ``ce-*`` headers with lower-case names.
    """
    kind = media_type(content_type)
    if kind == STRUCTURED:
        return [from_structured(load_json(body))]
    if kind == BATCH:
        return from_batch(load_json(body))
    if "ce-specversion" in headers:
        return [from_binary(headers=headers, content_type=content_type, body=body)]
    raise NotACloudEvent(
        f"Send one event as {STRUCTURED}, a batch as {BATCH}, "
        "or the event's attributes as ce-* headers (binary mode, ce-specversion required)."
    )


def load_json(body: bytes) -> Any:
    """Parse JSON strictly: UTF-8, no NaN/Infinity, no unstorable strings."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise TooDeep(f"The JSON is nested deeper than {MAX_DEPTH} levels in data.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedJson(f"The body is not valid JSON: {_short(exc)}") from None
    check_storable(value)
    return value


def from_batch(value: Any) -> list[CloudEvent]:
    """The events of a batch: a JSON array of structured-mode events."""
    if not isinstance(value, list):
        raise NotACloudEvent(f"A batch ({BATCH}) is a JSON array of events.")
    events = []
    for index, item in enumerate(value):
        try:
            events.append(from_structured(item))
        except NotACloudEvent as exc:
            raise type(exc)(f"Event {index}: {exc}", index=index) from None
    return events


def from_structured(value: Any) -> CloudEvent:
    """One event from its structured-mode JSON object."""
    if not isinstance(value, dict):
        raise NotACloudEvent("A CloudEvent in structured mode is a JSON object.")
    _check_specversion(value.get("specversion"))
    attributes = _attributes(value)
    if "data" in value and "data_base64" in value:
        raise NotACloudEvent("An event carries 'data' or 'data_base64', not both.")
    if "data_base64" in value:
        data = _decode_base64(value["data_base64"], attributes["datacontenttype"])
    else:
        data = value.get("data")
    check_storable(data, max_depth=MAX_DEPTH)
    return CloudEvent(**attributes, data=data)


def from_binary(*, headers: Mapping[str, str], content_type: str | None, body: bytes) -> CloudEvent:
    """One event in binary mode: attributes in ``ce-*`` headers, data in the body."""
    values: dict[str, Any] = {}
    for name, raw in headers.items():
        if name.startswith("ce-"):
            values[name[3:]] = _header_value(name, raw)
    _check_specversion(values.get("specversion"))
    values["datacontenttype"] = (content_type or "").strip() or None
    attributes = _attributes(values)
    data = decode_data(body, attributes["datacontenttype"])
    check_storable(data, max_depth=MAX_DEPTH)
    return CloudEvent(**attributes, data=data)


def decode_data(raw: bytes, content_type: str) -> Any:
    """Binary data as eventhub keeps it: parsed JSON for JSON media types, text for text/*."""
    if not raw:
        return None
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return load_json(raw)
    if kind.startswith("text/"):
        try:
            text = raw.decode(_charset(content_type))
        except (UnicodeDecodeError, LookupError) as exc:
            raise NotACloudEvent(f"The text data cannot be decoded: {_short(exc)}") from None
        check_storable(text)
        return text
    raise UnsupportedData(
        f"Data of type {kind or 'unknown'!r} cannot be stored: send JSON (application/json) or text (text/*)."
    )


def check_storable(value: Any, *, max_depth: int = MAX_DEPTH + 2) -> None:
    """Refuse strings that a database cannot store (NUL, lone surrogates), and nesting deeper than
    ``max_depth`` (a batch and an envelope add two levels to the data's own ``MAX_DEPTH``)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise TooDeep(f"The JSON is nested deeper than {MAX_DEPTH} levels in data.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    for name in REQUIRED:
        if not isinstance(values.get(name), str) or not values[name]:
            raise NotACloudEvent(f"The required attribute {name!r} is missing or not a non-empty string.")
    for name in ("subject", "datacontenttype", "time", "dataschema"):
        if values.get(name) is not None and not isinstance(values[name], str):
            raise NotACloudEvent(f"The attribute {name!r} must be a string.")
    for name, limit in MAX_LENGTHS.items():
        if len(values.get(name) or "") > limit:
            raise NotACloudEvent(f"The attribute {name!r} is longer than {limit} characters.")
    for name in (*REQUIRED, "subject", "datacontenttype", "dataschema"):
        _check_string(values.get(name) or "")
    return {
        "id": values["id"],
        "source": values["source"],
        "type": values["type"],
        "time": _timestamp(values.get("time")),
        "subject": values.get("subject") or None,
        "datacontenttype": values.get("datacontenttype") or JSON_DEFAULT,
        "dataschema": values.get("dataschema") or None,
        "extensions": _extensions(values),
        **_tracing(values),
    }


def _extensions(values: Mapping[str, Any]) -> dict[str, Any] | None:
    # The distributed-tracing extension is kept apart (Event.traceparent): see _tracing.
    found = {name: value for name, value in values.items() if name not in CORE and name not in TRACING}
    if len(found) > MAX_EXTENSIONS:
        raise NotACloudEvent(f"At most {MAX_EXTENSIONS} extension attributes are accepted.")
    for name, value in found.items():
        if not EXTENSION_NAME.match(name):
            raise NotACloudEvent(
                f"{name[:60]!r} is not an attribute name: CloudEvents names are lower-case "
                "letters and digits."
            )
        if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**31):
            continue
        if not isinstance(value, str) or len(value) > MAX_EXTENSION_LENGTH:
            raise NotACloudEvent(
                f"The extension attribute {name!r} must be a string (at most {MAX_EXTENSION_LENGTH} "
                "characters), a 32-bit integer or a boolean."
            )
        _check_string(value)
    return found or None


def _tracing(values: Mapping[str, Any]) -> dict[str, str | None]:
    # As the W3C spec says of headers: an invalid traceparent is ignored, never an error.
    context = parse_trace(values.get("traceparent"), values.get("tracestate") or "")
    return {"traceparent": context.traceparent, "tracestate": context.tracestate} if context else {}


def _check_specversion(value: Any) -> None:
    if value is None:
        raise NotACloudEvent("The required attribute 'specversion' is missing.")
    if value != SPECVERSION:
        raise NotACloudEvent(f"Only CloudEvents specversion {SPECVERSION!r} is accepted, not {value!r:.40}.")


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        # In UTC, as stored; a moment that has no UTC form (year 0 or 10000) is refused here.
        utc = moment.astimezone(UTC) if moment.tzinfo else None
    except (ValueError, OverflowError):
        utc = None
    if utc is None or "T" not in value.upper():
        raise NotACloudEvent(f"'time' must be an RFC 3339 timestamp with an offset, not {value!r:.60}.")
    return utc


def _decode_base64(value: Any, content_type: str) -> Any:
    if not isinstance(value, str):
        raise NotACloudEvent("'data_base64' must be a base64 string.")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise NotACloudEvent("'data_base64' is not valid base64.") from None
    return decode_data(raw, content_type)


def _header_value(name: str, raw: str) -> str:
    # WSGI hands headers over as latin-1; CloudEvents percent-encodes UTF-8 in header values.
    try:
        return unquote(raw.encode("latin-1").decode("utf-8"), errors="strict")
    except (UnicodeError, ValueError):
        raise NotACloudEvent(f"The header {name!r} is not valid percent-encoded UTF-8.") from None


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise NotACloudEvent("Strings must not contain the NUL character (\\u0000).")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotACloudEvent("Strings must not contain lone UTF-16 surrogates.") from None


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _short(exc: BaseException) -> str:
    return str(exc)[:200] or type(exc).__name__
