"""Dotted paths into an envelope (``subject``, ``data.order.id``), shared by ordering keys and transforms."""

from typing import Any

# The CloudEvents attributes an envelope may hold; a path starts with one of them.
ATTRIBUTES = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "data",
    "traceparent",
    "tracestate",
)
MISSING = object()


class PathError(ValueError):
    """A dotted path is malformed; the message says how."""


def check_path(path: object, *, root: str = "envelope") -> list[str]:
    """The parts of ``path``; PathError unless it is a dotted path (into the envelope, or data)."""
    if not isinstance(path, str) or not path.strip():
        raise PathError(f"a path must be a non-empty string such as data.order_id, got {path!r}")
    parts = path.split(".")
    if any(not part or part != part.strip() for part in parts):
        raise PathError(
            f"{path!r} has an empty or padded part; write names joined by dots, e.g. data.order_id"
        )
    if root == "envelope" and parts[0] not in ATTRIBUTES:
        raise PathError(f"{path!r} must start with an envelope attribute: {', '.join(ATTRIBUTES)}")
    return parts


def lookup(value: Any, parts: list[str]) -> Any:
    """The value at ``parts`` inside ``value`` (objects by key, lists by index), or MISSING."""
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value
