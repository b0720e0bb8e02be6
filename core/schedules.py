"""Every schedule type behind one interface: ``next_after(t)`` and ``prev_before(t)``, strict, in UTC,
returning None when there is no such fire (a one-shot task that has fired). Pure: no Django, no clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.cron import parse_cron


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime | None: ...

    def prev_before(self, before: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class IntervalSchedule:
    """Fires at start, start + every, start + 2·every, …"""

    start: datetime
    every: timedelta

    def next_after(self, after: datetime) -> datetime:
        if after < self.start:
            return self.start
        steps = math.floor((after - self.start) / self.every) + 1
        return self.start + steps * self.every

    def prev_before(self, before: datetime) -> datetime | None:
        if before <= self.start:
            return None
        steps = math.ceil((before - self.start) / self.every) - 1
        return self.start + steps * self.every


@dataclass(frozen=True)
class OneShotSchedule:
    """Fires once, at ``at``."""

    at: datetime | None

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at is not None and self.at > after else None

    def prev_before(self, before: datetime) -> datetime | None:
        return self.at if self.at is not None and self.at < before else None


@dataclass(frozen=True)
class WindowedSchedule:
    """``inner`` limited to the window [start, end] (either side open when None): no fire before ``start``
    or after ``end``. Every schedule type gets its window this way."""

    inner: Schedule
    start: datetime | None = None
    end: datetime | None = None

    def next_after(self, after: datetime) -> datetime | None:
        if self.start is not None and after < self.start:
            after = self.start - timedelta(microseconds=1)  # a fire at exactly ``start`` is in the window
        upcoming = self.inner.next_after(after)
        return None if upcoming is None or (self.end is not None and upcoming > self.end) else upcoming

    def prev_before(self, before: datetime) -> datetime | None:
        if self.end is not None and before > self.end:
            before = self.end + timedelta(microseconds=1)
        previous = self.inner.prev_before(before)
        return None if previous is None or (self.start is not None and previous < self.start) else previous


def build_schedule(
    *, schedule_type: str, cron_expression: str = "", timezone: str = "UTC", interval_seconds: int | None = None,
    start_at: datetime | None = None, run_at: datetime | None = None, once_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Schedule:
    """The schedule of a task's fields, within its window [start_at, end_at]. An interval is anchored at
    ``start_at``. ``once_at`` is when a ``once`` task was activated (it fires then)."""
    inner = _unwindowed(schedule_type=schedule_type, cron_expression=cron_expression, timezone=timezone,
                        interval_seconds=interval_seconds, start_at=start_at, run_at=run_at, once_at=once_at)
    if start_at is None and end_at is None:
        return inner
    return WindowedSchedule(inner, start_at, end_at)


def _unwindowed(*, schedule_type: str, cron_expression: str, timezone: str, interval_seconds: int | None,
                start_at: datetime | None, run_at: datetime | None, once_at: datetime | None) -> Schedule:
    if schedule_type == "cron":
        return parse_cron(cron_expression, timezone)
    if schedule_type == "interval":
        if not interval_seconds or start_at is None:
            raise ValueError("an interval schedule needs interval_seconds and start_at")
        return IntervalSchedule(start=start_at, every=timedelta(seconds=interval_seconds))
    if schedule_type == "date":
        return OneShotSchedule(run_at)
    if schedule_type == "once":
        return OneShotSchedule(once_at)
    raise ValueError(f"unknown schedule type {schedule_type!r}")
