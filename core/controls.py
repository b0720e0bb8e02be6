"""Scheduling controls beyond the schedule itself: jitter, backfill planning and the fire-time preview that
combines them with blackout calendars. Pure: no Django, no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.calendars import Blackout, blackout_at
from core.schedules import Schedule

MAX_JITTER_SECONDS = 3600
# A preview stops after looking at this many fire times, so a calendar that blacks out everything answers.
PREVIEW_SCAN_LIMIT = 10_000


def jitter(task_id: str, scheduled: datetime, max_seconds: int | None) -> timedelta:
    """The delay of one run, in [0, ``max_seconds``): the same for the same (task, scheduled time) on every
    node, so a failover (or a leader that fires the same time again) dispatches it at the same instant.
    Millisecond resolution; a hash, not a random generator, because no state may be shared between nodes."""
    if not max_seconds:
        return timedelta(0)
    digest = hashlib.sha256(f"{task_id}|{scheduled.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(milliseconds=int(fraction * max_seconds * 1000))


class BackfillTooLarge(ValueError):
    """More fire times in the range than the cap allows."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"the range holds more than {cap} fire times; narrow it or raise the limit")
        self.cap = cap


def plan_backfill(schedule: Schedule, start: datetime, end: datetime, cap: int) -> list[datetime]:
    """Every fire time of ``schedule`` in [start, end], oldest first; BackfillTooLarge past ``cap``."""
    if end < start:
        raise ValueError("the range ends before it starts")
    times: list[datetime] = []
    current = schedule.next_after(start - timedelta(microseconds=1))
    while current is not None and current <= end:
        if len(times) == cap:
            raise BackfillTooLarge(cap)
        times.append(current)
        current = schedule.next_after(current)
    return times


@dataclass(frozen=True)
class PlannedFire:
    """One fire time as the scheduler will treat it: run (and dispatched at ``dispatch_at``) or skipped."""

    scheduled_time: datetime
    dispatch_at: datetime
    blackout: str | None  # why it is skipped (the calendar and entry), None when it runs


def preview(schedule: Schedule, *, after: datetime, count: int, task_id: str, jitter_seconds: int | None,
            calendars: list[Blackout]) -> list[PlannedFire]:
    """The next fire times after ``after``, each with its dispatch instant and blackout: up to ``count`` that
    run (the blacked-out ones found on the way are included), looking at no more than PREVIEW_SCAN_LIMIT."""
    fires: list[PlannedFire] = []
    runs = 0
    current = after
    for _ in range(PREVIEW_SCAN_LIMIT):
        upcoming = schedule.next_after(current)
        if upcoming is None or runs == count:
            break
        reason = blackout_at(calendars, upcoming)
        fires.append(PlannedFire(upcoming, upcoming + jitter(task_id, upcoming, jitter_seconds), reason))
        runs += reason is None
        current = upcoming
    return fires
