"""The timeline's geometry and budgets, pure: which window a zoom preset shows, how a busy lane is folded
into cells, which status a folded cell shows, and where an instant falls on the x axis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.states import ExecutionStatus


class Zoom(StrEnum):
    HOUR = "1h"
    SIX_HOURS = "6h"
    DAY = "24h"
    WEEK = "7d"


SPANS = {Zoom.HOUR: timedelta(hours=1), Zoom.SIX_HOURS: timedelta(hours=6), Zoom.DAY: timedelta(hours=24),
         Zoom.WEEK: timedelta(days=7)}
# A busy lane is drawn as cells of this width (the database groups by minute or hour; cells merge those).
CELLS = {Zoom.HOUR: timedelta(minutes=1), Zoom.SIX_HOURS: timedelta(minutes=5), Zoom.DAY: timedelta(minutes=15),
         Zoom.WEEK: timedelta(hours=1)}
# The unit the database truncates to for each zoom: the largest that divides the cell.
TRUNCATION = {Zoom.HOUR: "minute", Zoom.SIX_HOURS: "minute", Zoom.DAY: "minute", Zoom.WEEK: "hour"}
# A lane with more runs than this in the window is folded into cells instead of one bar per run.
BAR_BUDGET_PER_LANE = 300
# Upcoming fires drawn per lane; beyond, the lane shows a band with the count.
MARKER_BUDGET_PER_LANE = 120
# Worst first: a folded cell shows the worst status among its runs.
SEVERITY = [ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED, ExecutionStatus.RUNNING,
            ExecutionStatus.PENDING, ExecutionStatus.SKIPPED, ExecutionStatus.SUCCESS]


@dataclass(frozen=True)
class Window:
    """What the timeline shows: the past ``span`` up to ``now`` and a quarter of it ahead (upcoming fires)."""

    start: datetime
    now: datetime
    end: datetime
    zoom: Zoom

    @classmethod
    def around(cls, now: datetime, zoom: Zoom) -> Window:
        span = SPANS[zoom]
        return cls(start=now - span, now=now, end=now + span / 4, zoom=zoom)

    @property
    def cell(self) -> timedelta:
        return CELLS[self.zoom]

    def fraction(self, instant: datetime) -> float:
        """Where ``instant`` falls, 0 at ``start`` and 1 at ``end``, clamped."""
        total = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (instant - self.start).total_seconds() / total))

    def cell_start(self, instant: datetime) -> datetime:
        """The start of the cell holding ``instant`` (cells are aligned to ``start``)."""
        return self.start + self.cell * ((instant - self.start) // self.cell)


def worst_status(counts: dict[str, int]) -> str:
    """The status a folded cell shows: the worst that occurred in it."""
    for status in SEVERITY:
        if counts.get(status):
            return status
    return next(iter(counts), ExecutionStatus.SUCCESS)


def fold(window: Window, groups: list[tuple[datetime, str, int]]) -> dict[datetime, dict[str, int]]:
    """``(bucket start, status, count)`` rows as the database groups them (by minute or hour) merged into the
    window's cells: cell start -> counts by status. Buckets outside the window are dropped."""
    cells: dict[datetime, dict[str, int]] = {}
    for bucket, status, count in groups:
        if not window.start <= bucket < window.end:
            continue
        counts = cells.setdefault(window.cell_start(bucket), {})
        counts[status] = counts.get(status, 0) + count
    return cells


def upcoming(next_after, now: datetime, until: datetime, budget: int = MARKER_BUDGET_PER_LANE
             ) -> tuple[list[datetime], bool]:
    """Fire times after ``now`` up to ``until`` from a schedule's ``next_after``, at most ``budget`` of them;
    and whether more were left out."""
    fires: list[datetime] = []
    current = next_after(now)
    while current is not None and current <= until:
        if len(fires) == budget:
            return fires, True
        fires.append(current)
        current = next_after(current)
    return fires, False
