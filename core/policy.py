"""Pure scheduling decisions: no Django, no clock, no I/O. Callers pass ``now`` and state in.

Every rule the engine applies lives here as a small function, so it can be tested tick by tick with
plain datetimes and table-driven cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from core.states import ACTIVE_STATUSES, RETRYABLE_STATUSES, ExecutionStatus


class ExecutionMode(StrEnum):
    """What a fire does when earlier runs of its task are still in progress."""

    PARALLEL = "parallel"
    SEQUENTIAL = "sequential"
    SKIP = "skip"
    REPLACE = "replace"  # the new fire cancels the run in progress (stopped on its executor), then starts
    QUEUE = "queue"  # every fire waits its turn, up to a bound, and runs one at a time in order


# Modes whose runs start one at a time: a pending run waits while another of its task is running.
ONE_AT_A_TIME = frozenset({ExecutionMode.SEQUENTIAL, ExecutionMode.REPLACE, ExecutionMode.QUEUE})
# Queue mode without max_instances: at most this many runs of the task pending or running.
DEFAULT_QUEUE_BOUND = 100


class MisfirePolicy(StrEnum):
    """What happens to fire times missed while no leader ran."""

    FIRE_ONCE = "fire_once"
    FIRE_ALL = "fire_all"
    SKIP = "skip"


class TriggerType(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"  # an operator's "run every fire time between A and B"


def retry_delay_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff before retry number ``attempt`` (1 = first retry): base, 2·base, 4·base… ≤ cap."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(cap, base * (2 ** min(attempt - 1, 30)))


# --- Firing: which cron times to run after an outage -------------------------------------------------

@dataclass(frozen=True)
class FirePlan:
    """What to do with the fire times that are due for one task."""

    run: list[datetime]  # fire times that get an execution
    skip: list[datetime]  # fire times recorded as skipped (misfire policy "skip")
    missed: int  # late (misfired) due times found, at most `limit`
    more_missed: bool  # whether there were even older missed times beyond `limit`
    next_run_time: datetime | None  # the task's next fire strictly after now; None when there is none


def plan_fires(
    *,
    first_due: datetime,
    now: datetime,
    next_after: Callable[[datetime], datetime | None],
    prev_before: Callable[[datetime], datetime | None],
    policy: str,
    misfire_threshold: timedelta,
    limit: int,
    horizon: datetime | None = None,
) -> FirePlan:
    """Decide which due fire times of a task run, given the first due time persisted for it.

    A due time no older than ``misfire_threshold`` is on time and always runs. Older ones were missed
    (no leader, or the leader stalled) and follow the misfire policy: ``fire_once`` runs the latest
    missed time once, ``fire_all`` runs each (the newest ``limit``), ``skip`` runs none and records them
    (the newest ``limit``). Due times are walked backwards from ``now``, so a week-long outage of a
    per-second cron costs ``limit`` steps, not 604,800.

    ``horizon`` (at or after ``now``) fires ahead: fire times up to it are planned now, so their executions
    exist, ready to dispatch, when their time comes. Lateness is still measured from ``now``.
    """
    horizon = now if horizon is None else max(horizon, now)
    upcoming = next_after(horizon)
    ahead: list[datetime] = []  # after now: not due yet, never late, not counted against ``limit``
    newest_first: list[datetime] = []
    current: datetime | None = horizon + timedelta(microseconds=1)  # fires at exactly the horizon are due
    while len(newest_first) <= limit:
        current = prev_before(current)
        if current is None or current < first_due:
            break
        (ahead if current > now else newest_first).append(current)
    more = len(newest_first) > limit
    due = list(reversed(newest_first[:limit]))
    upcoming_runs = list(reversed(ahead))
    on_time = [t for t in due if now - t <= misfire_threshold]
    late = [t for t in due if now - t > misfire_threshold]
    if not late:
        return FirePlan(run=on_time + upcoming_runs, skip=[], missed=0, more_missed=False, next_run_time=upcoming)
    if policy == MisfirePolicy.FIRE_ALL:
        run, skip = due, []
    elif policy == MisfirePolicy.SKIP:
        run, skip = on_time, late
    else:  # fire_once: one run stands for the whole missed window, unless an on-time fire already does
        run, skip = (on_time or [late[-1]]), []
    run += upcoming_runs
    return FirePlan(run=run, skip=skip, missed=len(late), more_missed=more, next_run_time=upcoming)


# --- Execution modes -------------------------------------------------------------------------------

class FireAction(Enum):
    QUEUE = "queue"  # insert a pending execution for the dispatcher
    SKIP = "skip"  # record a skipped execution
    REPLACE = "replace"  # cancel the runs in progress (stop them on their executors), then queue this one


@dataclass(frozen=True)
class FireDecision:
    action: FireAction
    reason: str = ""


def decide_fire(mode: str, *, running: int, waiting: int, max_instances: int | None = None) -> FireDecision:
    """Apply the task's execution mode to one scheduled fire (spec README, settled disagreements).

    parallel: queue, unless ``max_instances`` runs are already pending or running (then skipped).
    sequential: queue to wait for the run in progress, but at most one waits.
    skip: a fire that finds a run in progress or waiting is recorded as skipped.
    replace: a fire that finds runs in progress or waiting replaces them (they are cancelled).
    queue: every fire waits its turn, unless ``max_instances`` (default DEFAULT_QUEUE_BOUND) runs are
    already pending or running (then skipped).
    """
    busy = running + waiting > 0
    if mode in (ExecutionMode.PARALLEL, ExecutionMode.QUEUE):
        bound = max_instances or (DEFAULT_QUEUE_BOUND if mode == ExecutionMode.QUEUE else None)
        if bound is not None and running + waiting >= bound:
            name = "max_instances" if max_instances else "the queue bound"
            return FireDecision(FireAction.SKIP, f"{name} ({bound}) reached: {running} running, {waiting} waiting")
        return FireDecision(FireAction.QUEUE)
    if mode == ExecutionMode.SKIP:
        if busy:
            return FireDecision(FireAction.SKIP, "skip mode: the previous run has not finished")
        return FireDecision(FireAction.QUEUE)
    if mode == ExecutionMode.SEQUENTIAL:
        if waiting >= 1 and running >= 1 or waiting >= 2:
            return FireDecision(FireAction.SKIP, "sequential mode: a run is already waiting for the previous one")
        return FireDecision(FireAction.QUEUE)
    if mode == ExecutionMode.REPLACE:
        return FireDecision(FireAction.REPLACE if busy else FireAction.QUEUE)
    raise ValueError(f"unknown execution mode {mode!r}")


def dispatch_limit(mode: str, *, trigger_type: str, max_instances: int | None) -> int | None:
    """How many runs of a task may be running when one of its pending runs starts (None: no limit).

    Manual triggers bypass the mode. One-at-a-time modes start a run only when none is running. A backfill
    never skips a fire time: its runs wait, one at a time, or up to ``max_instances`` at once for a parallel
    task (all at once without it).
    """
    if trigger_type == TriggerType.MANUAL:
        return None
    if mode in ONE_AT_A_TIME:
        return 1
    if trigger_type == TriggerType.BACKFILL:
        return max_instances if mode == ExecutionMode.PARALLEL else 1
    return None


def may_dispatch(mode: str, *, trigger_type: str, running: int, max_instances: int | None = None) -> bool:
    """Whether a pending run may start now, given how many runs of its task are running."""
    limit = dispatch_limit(mode, trigger_type=trigger_type, max_instances=max_instances)
    return limit is None or running < limit


# --- Broadcast: one logical run, one shard per executor ------------------------------------------

def broadcast_outcome(shards: dict[int, str]) -> str | None:
    """The status of a broadcast run from the status of each shard's latest attempt: None while any is
    pending or running (a retry counts as the shard's latest attempt); success when every shard succeeded;
    failed when any failed or timed out; otherwise (shards cancelled) cancelled."""
    statuses = set(shards.values())
    if not statuses or statuses & ACTIVE_STATUSES:
        return None
    if statuses == {ExecutionStatus.SUCCESS}:
        return ExecutionStatus.SUCCESS
    if statuses & RETRYABLE_STATUSES:
        return ExecutionStatus.FAILED
    return ExecutionStatus.CANCELLED


def attempts_status(attempts: dict[int, str]) -> str:
    """The status of one piece of work (a broadcast shard, a workflow node in one round) from its attempts'
    (retry_count -> status): its latest attempt's, unless an earlier one succeeded after all (a late result
    applied over a presumed timeout or loss, README "Leases", which cancels the retry still waiting)."""
    return max(attempts.items(), key=lambda attempt: attempt_rank(*attempt))[1]


def attempt_rank(retry_count: int, status: str) -> tuple[bool, int]:
    """Orders the attempts of one piece of work so that the one deciding its status (``attempts_status``)
    comes last."""
    return status == ExecutionStatus.SUCCESS, retry_count


# --- Executor health (spec 002 §4.2.2) ------------------------------------------------------------

@dataclass(frozen=True)
class HealthState:
    is_healthy: bool
    failures: int = 0  # consecutive failed checks
    successes: int = 0  # consecutive successful checks


def next_health(state: HealthState, *, ok: bool, failure_threshold: int, recovery_threshold: int) -> HealthState:
    """One check's effect: ``failure_threshold`` failures in a row mark unhealthy, ``recovery_threshold``
    successes in a row mark healthy again."""
    if ok:
        successes = state.successes + 1
        healthy = state.is_healthy or successes >= recovery_threshold
        return HealthState(is_healthy=healthy, failures=0, successes=successes)
    failures = state.failures + 1
    healthy = state.is_healthy and failures < failure_threshold
    return HealthState(is_healthy=healthy, failures=failures, successes=0)


# --- Timeouts ------------------------------------------------------------------------------------

def deadline_for(start: datetime, timeout_seconds: int) -> datetime:
    return start + timedelta(seconds=timeout_seconds)

