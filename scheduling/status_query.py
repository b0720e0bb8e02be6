"""Asking an executor about runs before declaring them timed out or lost (README "Leases").

``POST {base_url}/status`` with ``{"executions": [{"execution_id", "attempt"}, ...]}``, signed like every
request to an executor. The executor answers from its own journal, one entry per run:
``{"execution_id", "attempt", "state": "running" | "finished" | "unknown"}``, a finished one with its
``status``, ``result``, ``logs`` and ``end_time`` (the result it may not have delivered yet).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from core.leases import LeaseAnswer
from core.states import CALLBACK_STATUSES
from executions.models import TaskExecution
from executions.services import ResultReport
from executors.client import Answer, Unreachable, post_json
from executors.models import Executor
from executors.netguard import RefusedURL
from scheduler_project.config import tunable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunState:
    answer: LeaseAnswer
    report: ResultReport | None = None  # for a finished run


UNREACHABLE = RunState(LeaseAnswer.UNREACHABLE)


def status_url(executor: Executor) -> str:
    return executor.endpoint("/status")


def ask_executor(executor: Executor, runs: list[TaskExecution], *, transport=post_json) -> dict[str, RunState]:
    """What ``executor`` says of each of ``runs`` (by id); UNREACHABLE for all when it does not answer."""
    body = {"executions": [{"execution_id": run.pk, "attempt": run.attempt} for run in runs]}
    try:
        answer = transport(executor, status_url(executor), body, timeout=tunable("DISPATCH_TIMEOUT_SECONDS"))
    except (RefusedURL, Unreachable) as exc:
        logger.info("status of %s runs on executor %s: no answer: %s", len(runs), executor.instance_id, exc)
        return dict.fromkeys((run.pk for run in runs), UNREACHABLE)
    entries = _entries(answer)
    if entries is None:
        return dict.fromkeys((run.pk for run in runs), UNREACHABLE)
    return {run.pk: _state(run, entries.get(run.pk)) for run in runs}


def _entries(answer: Answer) -> dict[str, dict] | None:
    """The answer's entries by execution id; None for an answer that is not one (an error, not JSON)."""
    if not answer.ok:
        return None
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    items = data.get("executions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return {str(item.get("execution_id")): item for item in items if isinstance(item, dict)}


def _state(run: TaskExecution, entry: dict | None) -> RunState:
    """A run the answer leaves out, or names with another attempt, is not held; an entry this scheduler
    cannot read is no answer about it."""
    if entry is None:
        return RunState(LeaseAnswer.UNKNOWN)
    if entry.get("attempt") not in (None, run.attempt) or entry.get("state") == LeaseAnswer.UNKNOWN:
        return RunState(LeaseAnswer.UNKNOWN)
    if entry.get("state") == LeaseAnswer.RUNNING:
        return RunState(LeaseAnswer.RUNNING)
    if entry.get("state") == LeaseAnswer.FINISHED and entry.get("status") in CALLBACK_STATUSES:
        # A result it delivered already (or lost) comes without one: the status and end are its word still.
        result = entry.get("result")
        return RunState(LeaseAnswer.FINISHED, ResultReport(
            execution_id=run.pk, status=entry["status"], result=result if isinstance(result, dict) else None,
            logs=entry.get("logs") if isinstance(entry.get("logs"), str) else None,
            end_time=_instant(entry.get("end_time"))))
    return UNREACHABLE


def _instant(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
