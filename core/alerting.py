"""Pure alerting decisions: which conditions open, repeat or resolve an incident, when a rule is silent,
how many notifications a channel may send now (the rest wait for a digest), and whether a run's duration
is anomalous. No Django, no clock, no I/O: callers pass the time and the state in."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from core.policy import retry_delay_seconds


class Condition(StrEnum):
    """What an incident is about. Each has one open incident per subject (task, executor or node) at most."""

    RUN_FAILED = "run_failed"  # a failed, timed-out or lost run (core.states.UNSUCCESSFUL_STATUSES)
    CONSECUTIVE_FAILURES = "consecutive_failures"
    FIRE_SKIPPED = "fire_skipped"  # a missed or skipped fire: misfire policy, max_instances, no leader
    DURATION_ANOMALY = "duration_anomaly"
    EXECUTOR_UNHEALTHY = "executor_unhealthy"
    NO_LEADER = "no_leader"
    NODE_STALE = "node_stale"
    WORKFLOW_FAILED = "workflow_failed"  # a workflow run ended failed (its failed node's task alerts on its own)


class IncidentAction(StrEnum):
    OPEN = "open"  # a new incident: notify
    REPEAT = "repeat"  # the condition again while its incident is open: count it, send nothing
    RESOLVE = "resolve"  # the subject recovered: close the incident and notify the recovery
    IGNORE = "ignore"  # a recovery with nothing open: nothing happened worth a word


def decide_incident(*, has_open: bool, firing: bool) -> IncidentAction:
    """One open incident per (subject, condition) until it recovers. ``firing`` is the condition being seen
    (a failure); not firing is the subject's recovery signal (a success, a passed health check)."""
    if firing:
        return IncidentAction.REPEAT if has_open else IncidentAction.OPEN
    return IncidentAction.RESOLVE if has_open else IncidentAction.IGNORE


# --- silence windows ----------------------------------------------------------------------------------

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class SilenceWindow:
    """A daily span of wall-clock time, ``start`` inclusive, ``end`` exclusive; it crosses midnight when
    ``end`` <= ``start`` (``22:00-07:00``)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def parse_silence_windows(text: str) -> list[SilenceWindow]:
    """``"22:00-07:00, 12:00-13:00"`` -> windows. Raises ValueError naming the bad part."""
    windows = []
    for part in filter(None, (piece.strip() for piece in (text or "").split(","))):
        match = _WINDOW.match(part)
        if match is None:
            raise ValueError(f"'{part}' is not a window like 22:00-07:00")
        hour1, minute1, hour2, minute2 = (int(group) for group in match.groups())
        if hour1 > 23 or hour2 > 23 or minute1 > 59 or minute2 > 59:
            raise ValueError(f"'{part}' has a time outside 00:00-23:59")
        start, end = time(hour1, minute1), time(hour2, minute2)
        if start == end:
            raise ValueError(f"'{part}' is empty: start and end are equal")
        windows.append(SilenceWindow(start, end))
    return windows


def is_silenced(windows: Sequence[SilenceWindow], local_now: datetime) -> bool:
    """Whether ``local_now`` (already in the rule's time zone) falls in one of the windows."""
    moment = local_now.time().replace(tzinfo=None)
    return any(window.contains(moment) for window in windows)


def is_muted(mute_until: datetime | None, now: datetime) -> bool:
    return mute_until is not None and now < mute_until


# --- per-channel rate limit and digest -----------------------------------------------------------------

@dataclass(frozen=True)
class ChannelBudget:
    """What a channel may send now. ``send`` notifications go out one by one; when some are being held,
    the held ones go out together as one digest as soon as there is room for one message."""

    send: int  # how many of the waiting notifications to send individually now
    digest: bool  # whether to send one digest of the held notifications now


def channel_budget(*, limit: int | None, sent_in_window: int, waiting: int, held: int) -> ChannelBudget:
    """``limit`` messages per window (None: no limit). ``sent_in_window`` were already sent in the current
    window; ``waiting`` are new, ``held`` were held back earlier. Held ones leave first, as one digest that
    the waiting ones join, so what was held is never overtaken; waiting ones beyond the room are held (the
    caller marks them)."""
    if limit is None:
        return ChannelBudget(send=0 if held else waiting, digest=held > 0)
    room = max(0, limit - sent_in_window)
    if held:
        return ChannelBudget(send=0, digest=room > 0)
    return ChannelBudget(send=min(room, waiting), digest=False)


# --- duration anomalies ----------------------------------------------------------------------------------

class Anomaly(StrEnum):
    SLOW = "slow"
    FAST = "fast"


def duration_anomaly(duration_ms: int | None, recent_ms: Sequence[int], *, factor: float,
                     min_samples: int = 5) -> Anomaly | None:
    """A run is anomalous when it took more than ``factor`` times its recent runs' median, or less than the
    median divided by ``factor``. Fewer than ``min_samples`` earlier runs: no median worth trusting."""
    if duration_ms is None or factor <= 1 or len(recent_ms) < min_samples:
        return None
    median = statistics.median(recent_ms)
    if median <= 0:
        return None
    if duration_ms > median * factor:
        return Anomaly.SLOW
    if duration_ms < median / factor:
        return Anomaly.FAST
    return None


# --- consecutive failures and delivery retries -----------------------------------------------------------

def consecutive_failures_reached(streak: int, threshold: int | None) -> bool:
    """Fires once, when the streak of unsuccessful final runs reaches the threshold (not at every run after)."""
    return threshold is not None and threshold > 0 and streak == threshold


def delivery_retry_at(now: datetime, attempts: int, *, base: float, cap: float) -> datetime:
    """When a failed delivery is tried again: base·2^(attempts-1) seconds, capped."""
    return now + timedelta(seconds=retry_delay_seconds(max(attempts, 1), base=base, cap=cap))
