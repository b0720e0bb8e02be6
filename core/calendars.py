"""Blackout calendars: named sets of local times in which a task must not fire. Pure: no Django, no clock.

A calendar has a time zone and entries, each one line of text:

- a date, ``2026-12-25``: that whole local day;
- a date range, ``2026-12-24..2026-12-26``: every local day from the first to the last, both included;
- a weekly window, ``Sun 02:00-04:00``: that local time every week, start included, end excluded. A window
  whose end is not after its start runs past midnight (``Sat 23:00-01:00`` ends on Sunday at 01:00).

Membership is decided on local wall time in the calendar's zone, so "Sunday 02:00-04:00 in Europe/Berlin"
stays that wall time across DST changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from core.cron import zone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKLY = re.compile(r"^([A-Za-z]{3})\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_RANGE_SEPARATOR = ".."
MAX_ENTRY_LENGTH = 64
DAY = 24 * 60  # minutes


class CalendarError(ValueError):
    """An entry that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class DateSpan:
    """Local days ``first`` to ``last``, both included."""

    first: date
    last: date

    def covers(self, local: datetime) -> bool:
        return self.first <= local.date() <= self.last


@dataclass(frozen=True)
class WeeklyWindow:
    """Every week from ``weekday`` (Monday is 0) at minute ``opens`` of the day, for ``minutes`` (local wall time)."""

    weekday: int
    opens: int
    minutes: int

    def covers(self, local: datetime) -> bool:
        # Minutes since the week began (Monday 00:00), compared modulo a week so a window may wrap Sunday night.
        minute = local.weekday() * DAY + local.hour * 60 + local.minute + local.second / 60
        return (minute - (self.weekday * DAY + self.opens)) % (7 * DAY) < self.minutes


Entry = DateSpan | WeeklyWindow


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CalendarError(f"{text.strip()!r} is not a date (YYYY-MM-DD)") from None


def _minute_of_day(hours: str, minutes: str, entry: str) -> int:
    minute = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or minute > DAY:
        raise CalendarError(f"{entry!r}: {hours}:{minutes} is not a time of day")
    return minute


def parse_entry(text: str) -> Entry:
    """One entry: ``YYYY-MM-DD``, ``YYYY-MM-DD..YYYY-MM-DD`` or ``Ddd HH:MM-HH:MM``; raises CalendarError."""
    entry = text.strip()
    if not entry or len(entry) > MAX_ENTRY_LENGTH:
        raise CalendarError(f"an entry has 1 to {MAX_ENTRY_LENGTH} characters, not {len(entry)}")
    weekly = _WEEKLY.match(entry)
    if weekly:
        day, start_h, start_m, end_h, end_m = weekly.groups()
        if day.lower() not in WEEKDAYS:
            raise CalendarError(f"{entry!r}: {day!r} is not a weekday ({', '.join(d.title() for d in WEEKDAYS)})")
        opens, closes = _minute_of_day(start_h, start_m, entry), _minute_of_day(end_h, end_m, entry)
        if opens == DAY:
            raise CalendarError(f"{entry!r}: a window opens before 24:00")
        length = closes - opens if closes > opens else closes - opens + DAY  # past midnight
        return WeeklyWindow(WEEKDAYS.index(day.lower()), opens, length)
    if _RANGE_SEPARATOR in entry:
        first, _, last = entry.partition(_RANGE_SEPARATOR)
        span = DateSpan(_date(first), _date(last))
        if span.last < span.first:
            raise CalendarError(f"{entry!r}: the range ends before it starts")
        return span
    day = _date(entry)
    return DateSpan(day, day)


@dataclass(frozen=True)
class Blackout:
    """A named calendar, its entries parsed."""

    name: str
    timezone: str
    entries: tuple[tuple[str, Entry], ...]  # (the entry as written, parsed)

    @classmethod
    def of(cls, name: str, timezone: str, entries: list[str]) -> Blackout:
        return cls(name, timezone, tuple((text.strip(), parse_entry(text)) for text in entries))

    def entry_covering(self, instant: datetime) -> str | None:
        """The first entry (as written) that covers ``instant`` (aware), or None."""
        local = instant.astimezone(zone(self.timezone))
        return next((text for text, entry in self.entries if entry.covers(local)), None)


def blackout_at(calendars: list[Blackout], instant: datetime) -> str | None:
    """Why ``instant`` is blacked out (``calendar 'name' (entry)``), or None when no calendar covers it."""
    for calendar in calendars:
        entry = calendar.entry_covering(instant)
        if entry is not None:
            return f"calendar '{calendar.name}' ({entry})"
    return None
