"""Transforms: what a route sends, reshaped by a small declarative mapping (no code runs).

A transform is a JSON object; ``{}`` sends the envelope as it is::

    {"body": "data",                                  # "envelope" (default) or only "data"
     "fields": {"order": "order_id", "total": "amount.value"},  # pick and rename (paths in the body)
     "headers": {"X-Tenant": "acme"}}                 # static webhook headers

``fields`` maps output names to dotted paths into the chosen body (``data.x`` or
``subject`` for the envelope, ``x`` for data); an output name with dots nests
(``"customer.id": "customer_id"``); a path the event lacks is left out. Only
these keys exist, so a transform can never run code or fetch anything.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from eventhub.events.paths import MISSING, PathError, check_path, lookup

BODIES = ("envelope", "data")
KEYS = ("body", "fields", "headers")
MAX_FIELDS = 100
MAX_HEADERS = 20
MAX_HEADER_VALUE = 1000
# Headers eventhub sets itself (signature, framing, target, trace) or that change how HTTP carries
# the request: a static header must never replace them.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "traceparent",
        "tracestate",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class TransformError(ValueError):
    """A transform is malformed; the message names the key and the problem."""


@dataclass(frozen=True)
class Transform:
    """A checked transform and the route's version number for it (0: none, the envelope as it is)."""

    spec: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    @property
    def reshapes(self) -> bool:
        """Whether the body sent is something other than the whole envelope."""
        return self.spec.get("body", "envelope") != "envelope" or bool(self.spec.get("fields"))

    @property
    def headers(self) -> dict[str, str]:
        """The static headers (webhooks only)."""
        return dict(self.spec.get("headers") or {})

    def body(self, envelope: dict[str, Any]) -> Any:
        """What the route sends for ``envelope``."""
        return apply(self.spec, envelope)


IDENTITY = Transform()


def check_transform(spec: object) -> dict[str, Any]:
    """The transform, or TransformError saying what is wrong. ``None`` and ``{}`` mean none."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise TransformError('a transform is a JSON object such as {"body": "data"}')
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise TransformError(f"unknown key(s) {', '.join(map(repr, unknown))}; use {', '.join(KEYS)}")
    body = spec.get("body", "envelope")
    if body not in BODIES:
        raise TransformError(f'body must be "envelope" or "data", got {body!r}')
    _check_fields(spec.get("fields"), root=body)
    check_headers(spec.get("headers"))
    return spec


def _check_fields(fields: object, *, root: str) -> None:
    if fields is None:
        return
    if not isinstance(fields, dict) or not fields:
        raise TransformError('fields maps output names to paths, e.g. {"order": "data.order_id"}')
    if len(fields) > MAX_FIELDS:
        raise TransformError(f"fields holds {len(fields)} names; at most {MAX_FIELDS}")
    outputs: set[tuple[str, ...]] = set()
    for name, path in fields.items():
        parts = tuple(name.split("."))
        if not name or any(not p for p in parts):
            raise TransformError(f"fields: the output name {name!r} is empty or has an empty part")
        clash = [o for o in outputs if o[: len(parts)] == parts or parts[: len(o)] == o]
        if clash:
            raise TransformError(f"fields: {name!r} and {'.'.join(clash[0])!r} would overwrite each other")
        outputs.add(parts)
        try:
            check_path(path, root=root)
        except PathError as exc:
            raise TransformError(f"fields[{name!r}]: {exc}") from None


def check_headers(headers: object) -> None:
    """TransformError unless ``headers`` is an object of safe, static header names and values."""
    if headers is None:
        return
    if not isinstance(headers, dict):
        raise TransformError('headers is an object of names and values, e.g. {"X-Tenant": "acme"}')
    if len(headers) > MAX_HEADERS:
        raise TransformError(f"headers holds {len(headers)} names; at most {MAX_HEADERS}")
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise TransformError(f"headers: {name!r} is not a valid HTTP header name")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("proxy-"):
            raise TransformError(
                f"headers: {name!r} is set by eventhub or by HTTP itself and cannot be overridden"
            )
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            raise TransformError(
                f"headers[{name!r}] must be a string of at most {MAX_HEADER_VALUE} characters"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value if c != "\t"):
            raise TransformError(f"headers[{name!r}] must not hold control characters (such as line breaks)")


def apply(spec: dict[str, Any], envelope: dict[str, Any]) -> Any:
    """The body ``spec`` makes of ``envelope`` (``spec`` already checked)."""
    body: Any = envelope.get("data") if spec.get("body") == "data" else envelope
    fields = spec.get("fields")
    if not fields:
        return body
    out: dict[str, Any] = {}
    for name, path in fields.items():
        value = lookup(body, path.split("."))
        if value is MISSING:
            continue
        *parents, leaf = name.split(".")
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out
