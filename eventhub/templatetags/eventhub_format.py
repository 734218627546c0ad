"""Template filters for the operators' pages: ``{% load eventhub_format %}``.

Thin wrappers around eventhub.dashboard.formatting, which the admin uses too.
"""

from django import template

from eventhub.dashboard import formatting

register = template.Library()


@register.filter
def duration_ms(value: float | None) -> str:
    """1.0933969 -> "1.1 ms"; 1534.2 -> "1.5 s"."""
    return formatting.duration_ms(value)


@register.filter
def ago(value) -> str:
    """A past datetime as "4 s ago", "3 min ago" (Django's timesince stops at minutes)."""
    return formatting.ago(value)


@register.filter
def span(value) -> str:
    """A timedelta as "4 s", "12 min", "2 h"."""
    return formatting.span(value) if value is not None else ""
