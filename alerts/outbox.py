"""Recording alert events: called inside the transaction of the change that causes them (a run's end, a
skipped fire, an executor's health flipping, a leader taking over after a gap, a workflow run's end), so an
event exists exactly when its change committed. Only rows are written here; ``alerts.delivery`` decides what
they mean.

Successes are recorded only when they can matter (an incident of the task is open, or its rule watches
durations). What is open and what is watched is read at most once per CACHE_SECONDS per process, so a
successful run costs no query here: on the hot path of a healthy cluster, a success writes and reads nothing
more. A success that ends while a process's view is stale (an incident opened within the last second) is
caught by the leader's sweep (``alerts.delivery.reconcile_recoveries``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q

from alerts.models import GLOBAL_RULE_KEY, AlertEvent, AlertRule, Incident
from core.alerting import Condition
from core.states import UNSUCCESSFUL_STATUSES, ExecutionStatus

# How long a process trusts what it read about open task incidents and duration watching (a rule's
# duration_factor).
CACHE_SECONDS = 1.0
# What a lost run's event calls its status (its row says failed).
LOST = "lost"
_watched: dict[str, object] = {"read_at": float("-inf"), "global_": False, "tasks": {}, "open": frozenset()}


def record_run_end(execution, *, will_retry: bool, now: datetime, force: bool = False, lost: bool = False) -> None:
    """A run ended (``executions.services._after_ending``). Failed, timed-out or lost runs always make an
    event; successes only when they may resolve an incident or be checked for a duration anomaly (or when
    ``force``d by the leader's recovery sweep or a late result). A lost run's status is ``failed``
    (``executions.services.lose_run`` passes ``lost``): its event says "lost", which its message shows."""
    status = execution.status
    if status in UNSUCCESSFUL_STATUSES:
        _event(Condition.RUN_FAILED, firing=True, execution=execution, now=now,
               details={"status": LOST if lost else status, "retry_count": execution.retry_count,
                        "will_retry": will_retry})
    elif status == ExecutionStatus.SUCCESS and (force or _success_matters(execution.task_id)):
        _event(Condition.RUN_FAILED, firing=False, execution=execution, now=now,
               details={"status": status, "duration_ms": execution.duration_ms})


def record_skips(rows: Iterable, *, now: datetime) -> None:
    """Fires recorded as skipped (misfire policy, max_instances, a mode that skips): the cause is the row's log."""
    events = [AlertEvent(condition=Condition.FIRE_SKIPPED, task_id=row.task_id, execution_id=row.pk,
                         occurred_at=now, details={"cause": row.logs.strip()})
              for row in rows if row.status == ExecutionStatus.SKIPPED]
    if events:
        AlertEvent.objects.bulk_create(events)


def record_executor_health(executor, *, healthy: bool, failures: int, now: datetime) -> None:
    AlertEvent.objects.create(condition=Condition.EXECUTOR_UNHEALTHY, firing=not healthy, executor_id=executor.pk,
                              occurred_at=now, details={"failures": failures, "name": executor.name,
                                                        "instance_id": executor.instance_id})


def record_leaderless(*, since: datetime, now: datetime, node: str) -> None:
    """A node became leader after nobody led since ``since``: reported when leadership is back, since
    without a leader nothing is delivered."""
    AlertEvent.objects.create(condition=Condition.NO_LEADER, node=node, occurred_at=now,
                              details={"since": since.isoformat(), "seconds": (now - since).total_seconds()})


def record_node_heartbeat(*, instance_id: str, stale: bool, last_heartbeat: datetime, now: datetime) -> None:
    AlertEvent.objects.create(condition=Condition.NODE_STALE, firing=stale, node=instance_id, occurred_at=now,
                              details={"last_heartbeat": last_heartbeat.isoformat()})


def record_workflow_run_end(*, workflow_id: str, name: str, run_id: str, failed: bool, reason: str,
                            now: datetime) -> None:
    """A workflow run ended failed or succeeded (``workflows.runs.end_run``, in its transaction; one row per
    run, not per node: the failed node's task alerts on its own). The caller passes plain values."""
    AlertEvent.objects.create(condition=Condition.WORKFLOW_FAILED, firing=failed, occurred_at=now,
                              details={"workflow_id": workflow_id, "name": name, "run_id": run_id,
                                       "reason": reason})


def _event(condition: Condition, *, firing: bool, execution, now: datetime, details: dict) -> None:
    AlertEvent.objects.create(condition=condition, firing=firing, task_id=execution.task_id,
                              execution_id=execution.pk, occurred_at=now, details=details)


def _success_matters(task_id: str) -> bool:
    if time.monotonic() - _watched["read_at"] > CACHE_SECONDS:
        _refresh()
    watches_durations = _watched["tasks"].get(task_id, _watched["global_"])
    return watches_durations or task_id in _watched["open"]


def _refresh() -> None:
    rules = AlertRule.objects.filter(Q(key=GLOBAL_RULE_KEY) | Q(task__isnull=False)).values_list(
        "task_id", "enabled", "duration_factor")
    watching = {task: enabled and factor is not None for task, enabled, factor in rules}
    open_tasks = frozenset(Incident.objects.filter(resolved_at__isnull=True, task__isnull=False)
                           .values_list("task_id", flat=True))
    _watched.update(read_at=time.monotonic(), global_=watching.pop(None, False), tasks=watching, open=open_tasks)


def forget_cached_rules() -> None:
    """For tests and for a rule just saved in this process."""
    _watched["read_at"] = float("-inf")
