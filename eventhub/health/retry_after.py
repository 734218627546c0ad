"""Reading a receiver's ``Retry-After``: seconds, or an HTTP date; capped so nobody parks a delivery."""

from datetime import datetime
from email.utils import parsedate_to_datetime

from eventhub.conf import eventhub_settings

# The answers whose Retry-After eventhub honours: too many requests, and unavailable for now.
HONOURED_STATUSES = (429, 503)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """How long ``value`` asks to wait, between 0 and RETRY_AFTER_MAX_SECONDS; None when unreadable.

    ``value`` is either a number of seconds (``120``) or an HTTP date
    (``Wed, 21 Oct 2026 07:28:00 GMT``); a date in the past means now.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        seconds = float(int(text))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT
            when = when.replace(tzinfo=now.tzinfo)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), float(eventhub_settings.RETRY_AFTER_MAX_SECONDS))


def requested_wait(failure: BaseException | None, *, now: datetime) -> float | None:
    """The wait a failed attempt's answer asked for (a 429 or 503 with Retry-After), else None."""
    status = getattr(failure, "status", None)
    if status not in HONOURED_STATUSES:
        return None
    return retry_after_seconds(getattr(failure, "retry_after", None), now=now)
