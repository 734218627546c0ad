"""Server-side SVG charts for the dashboard: no JavaScript library, nothing fetched from the internet."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from eventhub.dashboard.formatting import how_many

# Stacking order, bottom first, and colours that read in a legend without a key lookup.
STATUS_COLOURS: dict[str, str] = {
    "succeeded": "#2da44e",
    "running": "#54aeff",
    "queued": "#8c959f",
    "pending": "#d0d7de",
    "retrying": "#d4a72c",
    "held": "#9a6700",  # its route is open or paused (docs/endpoint-health.md)
    "dead": "#cf222e",
}


FAILED_STATUSES = ("dead", "retrying")
FAILED_COLOUR = STATUS_COLOURS["dead"]
# The other deliveries of a sparkline: finished well, or still on their way.
SUCCEEDED_COLOUR, OTHER_COLOUR = "#4ac26b", "#afb8c1"


@dataclass(frozen=True)
class Bar:
    """One minute's counts by status."""

    minute: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Dead or retrying: the deliveries that need attention."""
        return sum(self.counts.get(status, 0) for status in FAILED_STATUSES)


def minute_bars(rows: Iterable[dict], *, minutes: int, now: datetime) -> list[Bar]:
    """One Bar per minute of the last ``minutes``, oldest first, from rows of minute/status/n."""
    end = now.replace(second=0, microsecond=0)
    slots = [end - timedelta(minutes=i) for i in range(minutes - 1, -1, -1)]
    counts: dict[datetime, dict[str, int]] = {slot: {} for slot in slots}
    for row in rows:
        slot = row["minute"].replace(second=0, microsecond=0)
        if slot in counts:
            counts[slot][row["status"]] = counts[slot].get(row["status"], 0) + row["n"]
    return [Bar(minute=slot, counts=counts[slot]) for slot in slots]


def deliveries_per_minute_svg(bars: list[Bar], *, width: int = 720, height: int = 160) -> SafeString:
    """A stacked bar chart of deliveries per minute by status, with a legend and a y-axis maximum."""
    top = max((bar.total for bar in bars), default=0) or 1
    plot_h = height - 34
    slot_w = width / max(len(bars), 1)
    rects = []
    for i, bar in enumerate(bars):
        rects.extend(_stack(bar, x=i * slot_w + 1, w=max(slot_w - 2, 1), plot_h=plot_h, top=top))
    first = bars[0].minute.strftime("%H:%M") if bars else ""
    last = bars[-1].minute.strftime("%H:%M") if bars else ""
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%" height="{h}" '
        'aria-label="Deliveries per minute by status">'
        '<text x="0" y="10" class="axis">{top}/min</text>'
        '<line x1="0" y1="{base}" x2="{w}" y2="{base}" stroke="#d0d7de"/>{rects}'
        '<text x="0" y="{label_y}" class="axis">{first}</text>'
        '<text x="{w}" y="{label_y}" class="axis" text-anchor="end">{last}</text>{legend}</svg>',
        w=width,
        h=height,
        top=top,
        base=plot_h + 12,
        rects=mark_safe("".join(rects)),  # noqa: S308 - built by format_html in _stack
        label_y=plot_h + 24,
        first=first,
        last=last,
        legend=_legend(width),
    )


def _stack(bar: Bar, *, x: float, w: float, plot_h: int, top: int) -> list[str]:
    parts, y = [], plot_h + 12
    for status, colour in STATUS_COLOURS.items():
        n = bar.counts.get(status, 0)
        if not n:
            continue
        h = plot_h * n / top
        y -= h
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                f"{x:.1f}",
                f"{y:.1f}",
                f"{w:.1f}",
                f"{h:.1f}",
                colour,
                bar.minute.strftime("%H:%M"),
                status,
                n,
            )
        )
    return parts


def _legend(width: int) -> SafeString:
    items = list(STATUS_COLOURS.items())
    step = 90
    x0 = width - step * len(items)
    return format_html_join(
        "",
        '<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="axis">{}</text>',
        (
            (x0 + i * step, 1, colour, x0 + i * step + 14, 10, status)
            for i, (status, colour) in enumerate(items)
        ),
    )


def sparkline_svg(bars: list[Bar], *, label: str, width: int = 120, height: int = 28) -> SafeString:
    """One route's deliveries per minute as a small bar line, failures (dead or retrying) in red.

    A minute with any failure shows it at least 3 px high, however many deliveries
    succeeded beside it, so that failures stand out at a glance.
    """
    total, failed = sum(bar.total for bar in bars), sum(bar.failed for bar in bars)
    top = max((bar.total for bar in bars), default=0) or 1
    slot = width / max(len(bars), 1)
    w = max(slot - 1, 1)
    rects = [_spark(bar, x=i * slot, w=w, height=height, top=top) for i, bar in enumerate(bars)]
    summary = f"{how_many(total, 'delivery', 'deliveries')}, {failed} failed in the last hour"
    return format_html(
        '<svg class="spark" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'aria-label="{label}: {s}"><title>{s}</title>'
        '<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#d0d7de"/>{rects}</svg>',
        w=width,
        h=height,
        label=label,
        s=summary,
        rects=mark_safe("".join(rects)),  # noqa: S308 - built by format_html in _spark
    )


def _spark(bar: Bar, *, x: float, w: float, height: int, top: int) -> str:
    if not bar.total:
        return ""
    bad = min(max(height * bar.failed / top, 3.0), float(height)) if bar.failed else 0.0
    full = max(height * bar.total / top, bad, 1.0)
    fill = SUCCEEDED_COLOUR if bar.counts.get("succeeded", 0) else OTHER_COLOUR
    tip = f"{bar.minute:%H:%M}: {how_many(bar.total, 'delivery', 'deliveries')}, {bar.failed} failed"
    parts = [_rect(x, height - full, w, full - bad, fill, tip, "ok")] if full > bad else []
    if bad:
        parts.append(_rect(x, height - bad, w, bad, FAILED_COLOUR, tip, "failed"))
    return "".join(parts)


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str, kind: str) -> str:
    return format_html(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        kind,
        f"{x:.1f}",
        f"{y:.1f}",
        f"{w:.1f}",
        f"{h:.1f}",
        fill,
        tip,
    )
