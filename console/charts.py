"""Server-side SVG charts for the operators' console. Plain Python (no Django, no network, no JavaScript):
each function takes the figures and returns an SVG document as a string, with every text escaped.

Colours are fixed per execution status; text uses ``currentColor`` so the charts follow the admin's light
or dark theme. Each bar carries a ``<title>``, which browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

# One colour per execution status, readable on light and dark backgrounds.
STATUS_COLOURS = {
    "success": "#2e9e5b",
    "failed": "#d64541",
    "timeout": "#e67e22",
    "running": "#3b82f6",
    "pending": "#9ca3af",
    "skipped": "#a78bfa",
    "cancelled": "#6b7280",
}

_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    colour: str


@dataclass(frozen=True)
class Bucket:
    label: str  # shown on the x axis (every few buckets)
    title: str  # the tooltip's heading, e.g. the full hour
    values: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.values.values())


@dataclass(frozen=True)
class RatePoint:
    label: str  # shown on the x axis (every few points), e.g. "03-14"
    title: str  # the tooltip's heading, e.g. the full date
    rate: float | None  # percent 0-100; None: no runs that day
    total: int = 0


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (at least 1): a readable axis top."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def divisions(top: int) -> int:
    """How many gridline steps split ``top`` (a nice ceiling) into whole, readable numbers."""
    if top <= 5:
        return top
    return 4 if str(top).startswith("2") else 5


def _fmt(number: float) -> str:
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _gridline(y: float, left: float, right: float, text: str, *, baseline: bool) -> list[str]:
    """A horizontal grid line across the plot with its value label on the left; the baseline is stronger."""
    return [
        f'<line x1="{left}" x2="{right}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
        f'stroke="currentColor" stroke-opacity="{0.35 if baseline else 0.12}"/>',
        f'<text x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end" fill="currentColor" '
        f'fill-opacity="0.7">{text}</text>',
    ]


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(label)}" class="console-chart" {_FONT} '
        f'font-size="11">',
        f"<title>{escape(label)}</title>",
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for item in series:
        parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(y - 9)}" width="10" height="10" rx="2" fill="{item.colour}"/>')
        parts.append(f'<text x="{_fmt(x + 14)}" y="{_fmt(y)}" fill="currentColor">{escape(item.label)}</text>')
        x += 22 + 6.5 * len(item.label)
    return parts


def stacked_bars(
    buckets: Sequence[Bucket], series: Sequence[Series], *, label: str, width: int = 1000, height: int = 260,
    label_every: int = 3,
) -> str:
    """A stacked bar per bucket, one segment per series, with a y axis, gridlines and a legend."""
    left, right, top, bottom = 40, 10, 26, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_ceiling(max((bucket.total for bucket in buckets), default=0))
    parts = _svg_open(width, height, label)
    parts += _legend(series, left, 14)
    steps = divisions(top_value)
    for i in range(steps + 1):
        y = top + plot_h - plot_h * i / steps
        parts += _gridline(y, left, width - right, _fmt(top_value * i / steps), baseline=i == 0)
    slot = plot_w / max(len(buckets), 1)
    bar_w = max(slot * 0.72, 1)
    for index, bucket in enumerate(buckets):
        x = left + index * slot + (slot - bar_w) / 2
        y = top + plot_h
        for item in series:
            count = bucket.values.get(item.key, 0)
            if not count:
                continue
            h = plot_h * count / top_value
            y -= h
            parts.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" height="{_fmt(h)}" fill="{item.colour}">'
                f"<title>{escape(bucket.title)}: {count} {escape(item.label.lower())}</title></rect>"
            )
        if bucket.total == 0:
            parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(top + plot_h - 1)}" width="{_fmt(bar_w)}" height="1" '
                         f'fill="currentColor" fill-opacity="0.2">'
                         f"<title>{escape(bucket.title)}: no runs</title></rect>")
        if index % label_every == 0:
            parts.append(f'<text x="{_fmt(x + bar_w / 2)}" y="{height - 8}" text-anchor="middle" '
                         f'fill="currentColor" fill-opacity="0.7">{escape(bucket.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def rate_colour(rate: float) -> str:
    if rate >= 95:
        return STATUS_COLOURS["success"]
    if rate >= 80:
        return STATUS_COLOURS["timeout"]
    return STATUS_COLOURS["failed"]


def rate_bars(
    points: Sequence[RatePoint], *, label: str, width: int = 1000, height: int = 220, label_every: int = 15,
) -> str:
    """Daily success rate (0-100 %) as bars coloured by level; a day without runs is a faint stub."""
    left, right, top, bottom = 40, 10, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = _svg_open(width, height, label)
    for percent in (0, 25, 50, 75, 100):
        y = top + plot_h - plot_h * percent / 100
        parts += _gridline(y, left, width - right, f"{percent}%", baseline=percent == 0)
    slot = plot_w / max(len(points), 1)
    bar_w = max(slot * 0.7, 1)
    for index, point in enumerate(points):
        x = left + index * slot + (slot - bar_w) / 2
        if point.rate is None:
            parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(top + plot_h - 2)}" width="{_fmt(bar_w)}" height="2" '
                         f'fill="currentColor" fill-opacity="0.2"><title>{escape(point.title)}: no runs</title></rect>')
        else:
            h = max(plot_h * point.rate / 100, 1)
            parts.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(top + plot_h - h)}" width="{_fmt(bar_w)}" height="{_fmt(h)}" '
                f'fill="{rate_colour(point.rate)}"><title>{escape(point.title)}: {_fmt(point.rate)}% of '
                f"{point.total} run{'s' if point.total != 1 else ''}</title></rect>"
            )
        if index % label_every == 0 or index == len(points) - 1:
            parts.append(f'<text x="{_fmt(x + bar_w / 2)}" y="{height - 8}" text-anchor="middle" '
                         f'fill="currentColor" fill-opacity="0.7">{escape(point.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_TICKS = {"1h": (600, "%H:%M"), "6h": (3600, "%H:%M"), "24h": (3 * 3600, "%H:%M"), "7d": (86400, "%m-%d")}


def timeline_svg(window, lanes, *, execution_url, width: int = 1200, lane_height: int = 24) -> str:
    """Lanes of runs over ``window`` (``core.timeline.Window``): a bar per run linking to it (``execution_url(id)``),
    folded cells for busy lanes, a tick per upcoming fire, time ticks in UTC and a "now" line."""
    left, right, top, bottom = 210, 12, 26, 26
    plot_w = width - left - right
    height = top + max(len(lanes), 1) * lane_height + bottom
    label = f"Timeline: {len(lanes)} task{'s' if len(lanes) != 1 else ''}, {window.zoom} to now and ahead"
    parts = _svg_open(width, height, label)

    def x_of(instant) -> float:
        return left + plot_w * window.fraction(instant)

    step, fmt = _TICKS[str(window.zoom)]
    first = window.start.timestamp() // step * step + step
    tick = first
    while tick < window.end.timestamp():
        instant = datetime.fromtimestamp(tick, tz=UTC)
        x = _fmt(x_of(instant))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{top - 4}" y2="{height - bottom}" stroke="currentColor" '
                     f'stroke-opacity="0.1"/>')
        parts.append(f'<text x="{x}" y="{top - 8}" text-anchor="middle" fill="currentColor" fill-opacity="0.7">'
                     f"{escape(instant.strftime(fmt))}</text>")
        tick += step
    if not lanes:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + 16}" text-anchor="middle" fill="currentColor">'
                     "No runs or upcoming fires in this window for these filters.</text>")
    for index, lane in enumerate(lanes):
        y = top + index * lane_height
        if index % 2:
            parts.append(f'<rect x="0" y="{y}" width="{width}" height="{lane_height}" fill="currentColor" '
                         f'fill-opacity="0.04"/>')
        name = lane.name if len(lane.name) <= 30 else lane.name[:29] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + lane_height / 2 + 4}" text-anchor="end" fill="currentColor">'
                     f"<title>{escape(lane.name)}: {lane.total} run{'s' if lane.total != 1 else ''} in the window"
                     f"</title>{escape(name)}</text>")
        for cell in lane.cells:
            x0, x1 = x_of(cell["start"]), x_of(cell["end"])
            parts.append(f'<rect x="{_fmt(x0)}" y="{y + 5}" width="{_fmt(max(x1 - x0, 1))}" '
                         f'height="{lane_height - 10}" fill="{STATUS_COLOURS.get(cell["status"], "#9ca3af")}" '
                         f'fill-opacity="0.75">'
                         f'<title>{escape(cell["title"])}</title></rect>')
        for bar in lane.bars:
            x0, x1 = x_of(bar["start"]), x_of(bar["end"])
            parts.append(f'<a href="{escape(execution_url(bar["id"]))}"><rect x="{_fmt(x0)}" y="{y + 4}" '
                         f'width="{_fmt(max(x1 - x0, 2))}" height="{lane_height - 8}" rx="2" '
                         f'fill="{STATUS_COLOURS.get(bar["status"], "#9ca3af")}" class="timeline-bar">'
                         f'<title>{escape(bar["title"])}</title></rect></a>')
        for fire in lane.fires:
            x = _fmt(x_of(fire))
            parts.append(f'<line x1="{x}" x2="{x}" y1="{y + 6}" y2="{y + lane_height - 6}" stroke="currentColor" '
                         f'stroke-opacity="0.55" stroke-width="1.5" class="timeline-fire">'
                         f'<title>fires {escape(fire.strftime("%Y-%m-%d %H:%M:%S"))} UTC</title></line>')
        if lane.more_fires and lane.fires:
            x0 = x_of(lane.fires[-1])
            parts.append(f'<rect x="{_fmt(x0)}" y="{y + 9}" width="{_fmt(max(left + plot_w - x0, 1))}" '
                         f'height="{lane_height - 18}" fill="currentColor" fill-opacity="0.2">'
                         f'<title>more fires than shown until the window ends</title></rect>')
    now_x = _fmt(x_of(window.now))
    parts.append(f'<line x1="{now_x}" x2="{now_x}" y1="{top - 4}" y2="{height - bottom}" stroke="#d64541" '
                 f'stroke-width="1.5" stroke-dasharray="4 3" pointer-events="none" class="timeline-now"><title>now '
                 f'{escape(window.now.strftime("%Y-%m-%d %H:%M:%S"))} UTC</title></line>')
    legend = [Series(status, status.capitalize(), colour) for status, colour in STATUS_COLOURS.items()]
    parts += _legend(legend, left, height - 8)
    parts.append("</svg>")
    return "".join(parts)


def sparkline(buckets: Sequence[Bucket], series: Sequence[Series], *, label: str, width: int = 192,
              height: int = 30) -> str:
    """A small bar per bucket (e.g. an hour), its series stacked in order, scaled to the busiest bucket: no
    axes and no text, a tooltip per bar with its counts; an empty bucket is a faint tick on the baseline.
    Drawn at its own size (not stretched to its container), for a table cell."""
    slot = width / max(len(buckets), 1)
    bar_w = max(slot - 2, 1)
    busiest = max((bucket.total for bucket in buckets), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" class="console-sparkline">',
        f"<title>{escape(label)}</title>",
        f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" stroke="currentColor" '
        f'stroke-opacity="0.25"/>',
    ]
    for index, bucket in enumerate(buckets):
        x = _fmt(index * slot + (slot - bar_w) / 2)
        counts = [(item, bucket.values.get(item.key, 0)) for item in series if bucket.values.get(item.key)]
        summary = ", ".join(f"{count} {item.label.lower()}" for item, count in counts)
        total = bucket.total
        title = f"{bucket.title}: {total} run{'s' if total != 1 else ''}" + (f" ({summary})" if summary else "")
        parts.append(f'<g class="sparkline-bar" data-total="{total}"><title>{escape(title)}</title>')
        if not total:
            parts.append(f'<rect x="{x}" y="{height - 2}" width="{_fmt(bar_w)}" height="2" fill="currentColor" '
                         f'fill-opacity="0.15"/>')
        y = float(height)
        for item, count in counts:
            h = max((height - 1) * count / busiest, 1)
            y -= h
            parts.append(f'<rect x="{x}" y="{_fmt(y)}" width="{_fmt(bar_w)}" height="{_fmt(h)}" '
                         f'fill="{item.colour}"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
