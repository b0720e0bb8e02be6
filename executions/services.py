"""Execution state changes. Status moves only through ``transition``: a compare-and-set UPDATE, so the
callback, the timeout sweeper, stop and the dispatcher can race without producing an impossible state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from executions.choices import ACTIVE_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from scheduler_project.errors import DomainError, ErrorCode

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
    """Move to a terminal status, recording end time and duration, then let the retry policy react."""
    end = end_time or now
    if execution.start_time is not None and end < execution.start_time:
        end = execution.start_time
    done = transition(execution, to, expected=expected, end_time=end,
                      duration_ms=duration_ms(execution.start_time, end), **changes)
    if done:
        from scheduling.metrics import count_finished
        from scheduling.retries import schedule_retry  # the retry policy belongs to the scheduler

        count_finished(to)
        schedule_retry(execution, now=now)
    return done


@dataclass(frozen=True)
class CallbackOutcome:
    execution: TaskExecution
    previous_status: str


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
