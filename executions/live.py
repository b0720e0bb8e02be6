"""Live executions: log lines streamed while a run is in flight, and its progress.

An execution's ``logs`` is capped at ``settings.EXECUTION_LOG_MAX_CHARS``. The tail is kept (the end of a
log usually explains the outcome) behind one marker line saying how much was dropped; capping text that
already carries a marker folds the counts into a single marker, so markers never stack.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction

from executions.choices import ACTIVE_STATUSES
from executions.models import TaskExecution
from executions.services import get_execution
from scheduler_project.errors import DomainError, ErrorCode

_MARKER = re.compile(r"\A\[\.\.\. (\d+) earlier characters truncated \.\.\.\]\n")
PROGRESS_STEP_MAX_CHARS = 255


def truncation_marker(dropped: int) -> str:
    return f"[... {dropped} earlier characters truncated ...]\n"


def split_marker(logs: str) -> tuple[int, str]:
    """``(characters dropped so far, the text after the marker)``; ``(0, logs)`` when there is no marker."""
    match = _MARKER.match(logs)
    if match is None:
        return 0, logs
    return int(match.group(1)), logs[match.end():]


def cap_logs(logs: str, max_chars: int | None = None) -> str:
    """``logs`` cut to at most ``max_chars`` characters (default: the setting), keeping the tail.

    The cut moves forward to the next line start when the kept part has one, so the first kept line is
    whole; the marker counts every character dropped, including those dropped by earlier cuts.
    """
    limit = settings.EXECUTION_LOG_MAX_CHARS if max_chars is None else max_chars
    if len(logs) <= limit:
        return logs
    dropped, body = split_marker(logs)
    # Room for the marker at its largest (every character of body dropped); the real one is no longer.
    keep = max(0, limit - len(truncation_marker(dropped + len(body))))
    cut = len(body) - keep
    if cut > 0 and body[cut - 1] != "\n":
        newline = body.find("\n", cut, len(body) - 1)
        if newline != -1:
            cut = newline + 1
    return truncation_marker(dropped + cut) + body[cut:]


def appended_logs(existing: str, addition: str, max_chars: int | None = None) -> str:
    """``existing`` with ``addition`` appended on a new line, capped."""
    if not addition:
        return cap_logs(existing, max_chars)
    return cap_logs(f"{existing}\n{addition}" if existing else addition, max_chars)


def is_truncated(logs: str) -> bool:
    return _MARKER.match(logs) is not None


@dataclass(frozen=True)
class LogAppend:
    appended: int
    total_chars: int
    truncated: bool


@dataclass(frozen=True)
class LogTail:
    lines: list[str]
    total_lines: int
    truncated: bool


def _forbid(execution: TaskExecution, action: str) -> DomainError:
    return DomainError(
        ErrorCode.EXECUTION_STATE_FORBIDS,
        f"cannot {action} an execution whose status is '{execution.status}'",
        {"execution_id": execution.pk, "status": execution.status, "allowed": sorted(ACTIVE_STATUSES)},
    )


@transaction.atomic
def append_logs(*, execution_id: str, lines: list[str], now: datetime) -> LogAppend:
    """Append ``lines`` to a pending or running execution's logs (30002 otherwise), capped.

    The row is locked (SELECT ... FOR UPDATE) for the read-modify-write, so concurrent appends queue
    instead of overwriting each other; on SQLite the write transaction itself serialises them. ``now`` is
    taken for the services' uniform signature: nothing here records a time.
    """
    execution = get_execution(execution_id, for_update=True)
    if execution.status not in ACTIVE_STATUSES:
        raise _forbid(execution, "append logs to")
    logs = appended_logs(execution.logs, "\n".join(lines))
    # The status condition is belt and braces: the lock already keeps a transition out until commit.
    if TaskExecution.objects.filter(pk=execution.pk, status__in=ACTIVE_STATUSES).update(logs=logs) != 1:
        execution.refresh_from_db(fields=["status"])
        raise _forbid(execution, "append logs to")
    return LogAppend(appended=len(lines), total_chars=len(logs), truncated=is_truncated(logs))


def tail_logs(execution: TaskExecution, lines: int = 100) -> LogTail:
    """The last ``lines`` lines of the logs (the truncation marker is not a line), their total count, and
    whether earlier output was dropped by the cap."""
    dropped, body = split_marker(execution.logs or "")
    all_lines = body.split("\n") if body else []
    return LogTail(lines=all_lines[-lines:] if lines > 0 else [], total_lines=len(all_lines),
                   truncated=dropped > 0)


def report_progress(*, execution_id: str, percent: float, step: str | None = None,
                    now: datetime) -> TaskExecution:
    """Record a pending or running execution's progress (30002 otherwise).

    ``step`` None keeps the step last reported; ``""`` clears it. One conditional UPDATE: a report racing
    the run's end either lands before it or is refused.
    """
    if not (isinstance(percent, int | float) and math.isfinite(percent) and 0 <= percent <= 100):
        raise ValueError(f"percent must be a number from 0 to 100, got {percent!r}")
    if step is not None and len(step) > PROGRESS_STEP_MAX_CHARS:
        raise ValueError(f"step must be at most {PROGRESS_STEP_MAX_CHARS} characters")
    changes = {"progress_percent": float(percent), "progress_updated_at": now}
    if step is not None:
        changes["progress_step"] = step
    updated = TaskExecution.objects.filter(pk=execution_id, status__in=ACTIVE_STATUSES).update(**changes)
    execution = get_execution(execution_id)
    if updated != 1:
        raise _forbid(execution, "report progress for")
    return execution
