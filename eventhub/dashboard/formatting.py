"""How the operators' pages write durations and times: rounded, with their unit, never a bare float."""

from datetime import datetime, timedelta

from django.utils import timezone


def duration_ms(ms: float | None) -> str:
    """A duration in milliseconds, rounded for reading: "0.4 ms", "12 ms", "1.5 s", "2.1 min"."""
    if ms is None:
        return ""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return span(timedelta(milliseconds=ms))


def span(length: timedelta) -> str:
    """A length of time in its largest sensible unit: "4 s", "1.5 s", "3 min", "2.5 h", "3 d"."""
    seconds = max(length.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.0f} d"


def ago(moment: datetime | None, *, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, down to the second: "4 s ago", "3 min ago"; "" for None."""
    if moment is None:
        return ""
    elapsed = (now or timezone.now()) - moment
    return f"{span(timedelta(seconds=round(elapsed.total_seconds())))} ago"


def how_many(n: int, singular: str, plural: str = "") -> str:
    """``n`` with its noun in the right number: "1 delivery", "3 deliveries", "0 events"."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"
