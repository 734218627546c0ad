"""Ordering keys: a route's template over the envelope (``{subject}``, ``order/{data.order_id}``).

Deliveries of one route with the same rendered key run one at a time, in emit
order (eventhub.outbox.ordering). A template is literal text with ``{path}``
placeholders; ``{{`` and ``}}`` stand for literal braces.
"""

import functools
import hashlib
import re
from typing import Any

from eventhub.events.paths import MISSING, PathError, check_path, lookup

# Longest key stored as written; longer keys are stored as their SHA-256 (still one key each).
KEY_LIMIT = 200
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class KeyTemplateError(ValueError):
    """An ordering key template is malformed; the message says where."""


@functools.lru_cache(maxsize=256)
def _pieces(template: str) -> tuple[tuple[str, list[str] | None], ...]:
    """(literal, None) and (path, parts) pieces of ``template``; KeyTemplateError when malformed."""
    pieces: list[tuple[str, list[str] | None]] = []
    at = 0
    for found in _TOKEN.finditer(template):
        pieces.append((template[at : found.start()], None))
        token = found.group(0)
        if token in ("{{", "}}"):
            pieces.append((token[0], None))
        elif found.group(1) is None:
            raise KeyTemplateError(
                f"unmatched {token!r} at position {found.start()}; write {token * 2} for a literal brace"
            )
        else:
            try:
                pieces.append((found.group(1), check_path(found.group(1))))
            except PathError as exc:
                raise KeyTemplateError(f"placeholder {{{found.group(1)}}}: {exc}") from None
        at = found.end()
    pieces.append((template[at:], None))
    return tuple(pieces)


def check_key_template(template: str) -> None:
    """Raise KeyTemplateError unless ``template`` ("" = no ordering) has at least one valid placeholder."""
    if not template:
        return
    if not any(parts for _, parts in _pieces(template)):
        raise KeyTemplateError(
            "a key without a {placeholder} would put every event in one line; use e.g. {subject} "
            "or {data.order_id}"
        )


def render_key(template: str, envelope: dict[str, Any]) -> str | None:
    """The event's ordering key, or None when the template is empty or a placeholder's value is
    missing, null, an object or a list (such an event is delivered without ordering)."""
    if not template:
        return None
    out = []
    for text, parts in _pieces(template):
        if parts is None:
            out.append(text)
            continue
        value = lookup(envelope, parts)
        if value is MISSING or value is None or isinstance(value, dict | list):
            return None
        out.append(_text(value))
    key = "".join(out)
    if len(key) > KEY_LIMIT:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
