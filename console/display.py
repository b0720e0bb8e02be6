"""Small formatting pieces shared by the console's admin pages: status badges, JSON, durations, ages, rates."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from scheduler_project.redaction import mask_secrets, restore_masked

EMPTY = "—"


def badge(value: str | None, label: str | None = None) -> SafeString | str:
    """A coloured pill; the CSS class is the value itself (``badge-failed``, ``badge-online``…)."""
    if not value:
        return EMPTY
    return format_html('<span class="console-badge badge-{}">{}</span>', value, label or value)


def when(moment: datetime | None, *, now: datetime | None = None) -> SafeString | str:
    """A timestamp as operators read logs: ``2024-03-14 09:30:00`` (UTC), the exact instant on hover.

    With ``now`` (list columns), a time in the current year drops the year: ``03-14 09:30:00``.
    """
    if moment is None:
        return EMPTY
    text = f"{moment:%m-%d %H:%M:%S}" if now is not None and moment.year == now.year else f"{moment:%Y-%m-%d %H:%M:%S}"
    return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat(), moment.isoformat(), text)


def pretty_json(value: Any) -> SafeString | str:
    """Parameters, results, metadata as indented JSON, with values under secret-looking keys masked."""
    if value is None:
        return EMPTY
    text = json.dumps(mask_secrets(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="console-pre console-json">{}</pre>', text)


def log_block(text: str) -> SafeString | str:
    if not text:
        return EMPTY
    return format_html('<pre class="console-pre console-logs">{}</pre>', text)


def duration_text(milliseconds: int | float | None) -> str:
    """"850 ms", "12.3 s", "4 min 05 s", "2 h 03 min"."""
    if milliseconds is None:
        return EMPTY
    if milliseconds < 1000:
        return f"{int(milliseconds)} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def age_text(moment: datetime | None, now: datetime) -> str:
    """How long ago, in the largest sensible unit: "3 s ago", "5 min ago", "2 h ago", "4 d ago"."""
    if moment is None:
        return EMPTY
    seconds = int((now - moment) / timedelta(seconds=1))
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def rate_text(success: int | None, total: int | None) -> SafeString | str:
    """A success rate with its counts, coloured by level; a dash when there were no runs."""
    if not total:
        return EMPTY
    rate = (success or 0) * 100.0 / total
    level = "good" if rate >= 95 else "warn" if rate >= 80 else "bad"
    return format_html('<span class="console-rate rate-{}" title="{} of {} runs succeeded">{}%</span>',
                       level, success or 0, total, f"{rate:.1f}".rstrip("0").rstrip("."))


class MaskedJSONFieldsMixin:
    """For a ModelForm: the JSON fields named in ``masked_json_fields`` are shown with values under
    secret-looking keys masked; a mask sent back unchanged keeps the stored value, a value typed over it
    replaces it. So opening a change page never shows a stored password, and saving it loses none."""

    masked_json_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.masked_json_fields:
            if name in self.initial:
                self.initial[name] = mask_secrets(self.initial[name])

    def clean(self) -> dict:
        data = super().clean()
        for name in self.masked_json_fields:
            if name in data:
                data[name] = restore_masked(data[name], getattr(self.instance, name, None))
        return data
