"""Execution state changes. Status moves only through ``transition``: a compare-and-set UPDATE, so the
callback, the timeout sweeper, stop and the dispatcher can race without producing an impossible state.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import OperationalError, connection, transaction

from executions.choices import ACTIVE_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from scheduler_project.errors import DomainError, ErrorCode

logger = logging.getLogger(__name__)

R = TypeVar("R")
DEADLOCK_ATTEMPTS = 3

# Which statuses each status may move to. Terminal statuses have no way out.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    ExecutionStatus.PENDING: frozenset({
        ExecutionStatus.RUNNING, ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT,
        ExecutionStatus.SKIPPED, ExecutionStatus.CANCELLED,
    }),
    ExecutionStatus.RUNNING: frozenset({
        ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED,
        # Still running, with changed fields: failover to the next executor records the new one.
        ExecutionStatus.RUNNING,
    }),
}


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def transition(
    execution: TaskExecution, to: str, *, expected: Iterable[str] | None = None, **changes: Any
) -> bool:
    """Move ``execution`` to ``to`` if it is still in the status it was read with (or one of ``expected``).

    Returns True when this call made the change; False when something else changed the row first, in
    which case nothing was written. On success the instance reflects the new row.
    """
    sources = set(expected) if expected is not None else {execution.status}
    sources = {status for status in sources if to in ALLOWED_TRANSITIONS.get(status, ())}
    if not sources:
        return False
    updated = TaskExecution.objects.filter(pk=execution.pk, status__in=sources).update(status=to, **changes)
    if updated != 1:
        return False
    execution.status = to
    for field, value in changes.items():
        setattr(execution, field, value)
    return True


def transition_many(execution_ids: list[str], to: str, *, expected: str, **changes: Any) -> set[str]:
    """``transition`` for many executions in one UPDATE (the dispatcher claims a whole step this way).

    Returns the ids this call moved. The others changed first (a stop, a cancel) and were left alone: the
    rows that now carry exactly ``changes`` are ours.
    """
    if to not in ALLOWED_TRANSITIONS.get(expected, ()):
        return set()
    ids = list(execution_ids)
    moved = TaskExecution.objects.filter(pk__in=ids, status=expected).update(status=to, **changes)
    if moved == len(ids):
        return set(ids)
    return set(TaskExecution.objects.filter(pk__in=ids, status=to, **changes).values_list("pk", flat=True))


def get_execution(execution_id: str, *, for_update: bool = False) -> TaskExecution:
    queryset = TaskExecution.objects.select_related("task", "executor")
    if for_update:
        queryset = TaskExecution.objects.select_for_update()
    try:
        return queryset.get(pk=execution_id)
    except TaskExecution.DoesNotExist:
        raise DomainError(ErrorCode.EXECUTION_NOT_FOUND, f"execution '{execution_id}' does not exist") from None


def _forbid(execution: TaskExecution, action: str, allowed: Iterable[str]) -> DomainError:
    return DomainError(
        ErrorCode.EXECUTION_STATE_FORBIDS,
        f"cannot {action} an execution whose status is '{execution.status}'",
        {"execution_id": execution.pk, "status": execution.status, "allowed": sorted(allowed)},
    )


def finish(execution: TaskExecution, to: str, *, now: datetime, end_time: datetime | None = None,
           expected: Iterable[str] | None = None, **changes: Any) -> bool:
    """Move to a terminal status, recording end time and duration, then let the retry policy react.

    One transaction: a node that dies between the status change and the retry insert must not leave a
    failed run whose retry never exists (the chaos suite caught exactly that after a SIGKILL).
    """
    from scheduling.metrics import count_finished
    from scheduling.retries import schedule_retry  # the retry policy belongs to the scheduler

    end = end_time or now
    if execution.start_time is not None and end < execution.start_time:
        end = execution.start_time
    with transaction.atomic():
        done = transition(execution, to, expected=expected, end_time=end,
                          duration_ms=duration_ms(execution.start_time, end), **changes)
        if done:
            schedule_retry(execution, now=now)
    if done:
        count_finished(to)
    return done


def is_deadlock(exc: OperationalError) -> bool:
    """MySQL/MariaDB error 1213, or PostgreSQL's deadlock / serialization failure."""
    if exc.args and exc.args[0] == 1213:
        return True
    return getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")


def retried_on_deadlock(func: Callable[..., R]) -> Callable[..., R]:
    """Runs a whole transaction again when the database picked it as a deadlock victim.

    A callback racing the timeout sweep or a retry insert on the same rows can be chosen as the victim;
    the database rolled everything back, so running it again is safe, and the executor gets its answer
    instead of a 503. Inside an outer transaction there is nothing safe to re-run: the error propagates.
    """
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> R:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == DEADLOCK_ATTEMPTS or connection.in_atomic_block or not is_deadlock(exc):
                    raise
                logger.warning("%s: deadlock (attempt %s/%s), running the transaction again",
                               func.__name__, attempt, DEADLOCK_ATTEMPTS)
        raise AssertionError("unreachable")

    return run


@dataclass(frozen=True)
class CallbackOutcome:
    execution: TaskExecution
    previous_status: str


@retried_on_deadlock
@transaction.atomic
def apply_callback(*, execution_id: str, status: str, result: dict | None, logs: str | None,
                   end_time: datetime | None, now: datetime) -> CallbackOutcome:
    """Apply an executor's report once. A report for a run already final changes nothing (30002)."""
    execution = get_execution(execution_id, for_update=True)
    previous = execution.status
    if previous not in ACTIVE_STATUSES:
        raise _forbid(execution, "report a result for", ACTIVE_STATUSES)
    changes: dict[str, Any] = {"result": result}
    if logs:
        changes["logs"] = _appended_logs(execution.logs, logs)
    if not finish(execution, status, now=now, end_time=end_time, **changes):
        execution.refresh_from_db()
        raise _forbid(execution, "report a result for", ACTIVE_STATUSES)
    return CallbackOutcome(execution=execution, previous_status=previous)


@retried_on_deadlock
@transaction.atomic
def stop_execution(*, execution_id: str, now: datetime) -> CallbackOutcome:
    """Operator stop: running -> cancelled (spec 000 §7.5). The executor is told after commit."""
    execution = get_execution(execution_id, for_update=True)
    previous = execution.status
    if previous != ExecutionStatus.RUNNING or not finish(
        execution, ExecutionStatus.CANCELLED, now=now, logs=_appended_logs(execution.logs, "stopped by operator")
    ):
        raise _forbid(execution, "stop", {ExecutionStatus.RUNNING})
    return CallbackOutcome(execution=execution, previous_status=previous)


def _appended_logs(existing: str, addition: str) -> str:
    from executions.live import appended_logs  # live.py builds on this module

    return appended_logs(existing, addition)
