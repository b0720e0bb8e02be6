"""An execution's statuses and the moves between them. ``executions.services.transition`` is the only
writer of an execution's status and refuses any move this table does not allow."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})
TERMINAL_STATUSES = frozenset(set(ExecutionStatus) - ACTIVE_STATUSES)
RETRYABLE_STATUSES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})
# Runs that ended without success and are worth an alert (alerts.outbox). A lost run (its lease ran out, or its
# executor registered again without it) ends failed (executions.services.lose_run), so it is here too; its alert
# says "lost" from the flag lose_run passes to the run's end, not from its status.
UNSUCCESSFUL_STATUSES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT})
# What an executor may report through the callback (spec 000 §7.4), plus cancelled for a cooperative stop.
CALLBACK_STATUSES = (ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT,
                     ExecutionStatus.CANCELLED)

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
        # Handed back: a leader stepping down returns runs it claimed ahead of their time and never sent.
        ExecutionStatus.PENDING,
    }),
}


def may_move(source: str, target: str) -> bool:
    return target in ALLOWED_TRANSITIONS.get(source, ())

# A success that arrives after the scheduler ended the run on its own verdict (timeout, lost: failed) may still
# stand, when the executor finished within the deadline and no retry has started (core.leases.late_result):
# the work is done and must not run again. A late failure changes nothing: the retry it would cause is due.
LATE_RESULT_SOURCES = frozenset({ExecutionStatus.TIMEOUT, ExecutionStatus.FAILED})


def may_correct(source: str, target: str) -> bool:
    """Whether a late result may replace a status the scheduler presumed."""
    return source in LATE_RESULT_SOURCES and target == ExecutionStatus.SUCCESS
