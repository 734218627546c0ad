"""How the admin's lists show values so that they fit a screen: short, and breakable at punctuation."""

import re
from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# Where a long name or URL may break: after these, a browser may start a new line.
_BREAK_AFTER = re.compile(r"([./_?&=:])")


def breakable(text: str, *, limit: int = 0) -> SafeString:
    """``text`` escaped, with line-break opportunities after dots, slashes and underscores.

    With ``limit``, a longer text is cut in the middle ("https://erp.example.com/…/paid") and
    shown whole in a tooltip.
    """
    shown = text if not limit or len(text) <= limit else text[: limit // 2] + "…" + text[-(limit // 2) :]
    pieces = _BREAK_AFTER.split(shown)
    html = "".join(escape(p) + ("<wbr>" if _BREAK_AFTER.fullmatch(p) else "") for p in pieces)
    if shown == text:
        return mark_safe(html)  # noqa: S308 - every piece escaped above
    return format_html('<span title="{}">{}</span>', text, mark_safe(html))  # noqa: S308 - escaped above


def describe_trigger(*, signal: str, when: str, watch_fields: Sequence[str], m2m_field: str) -> str:
    """A hook's signal and condition in a few words: "created", "status changed", "products changed"."""
    if signal == "post_delete":
        return "deleted"
    if signal == "m2m_changed":
        return f"{m2m_field or 'links'} changed (m2m)"
    if when == "changed":
        return f"{', '.join(watch_fields) or 'watched fields'} changed"
    return {"created": "created", "updated": "updated"}.get(when, "saved")
