"""Recording alert events: called inside the transaction of the change that causes them (a run's end, a
skipped fire, an executor's health flipping, a leader taking over after a gap), so an event exists exactly
when its change committed. Only rows are written here; ``alerts.delivery`` decides what they mean.

Successes are recorded only when they can matter (an incident of the task is open, or its rule watches
durations), so the hot path of a healthy cluster pays one indexed lookup per successful run, not a write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q

from alerts.models import GLOBAL_RULE_KEY, AlertEvent, AlertRule, Incident
from core.alerting import Condition
from core.states import UNSUCCESSFUL_STATUSES, ExecutionStatus

# How long a process trusts what it read about duration watching (a rule's duration_factor): changing it
# takes effect on other processes' success events within this time.
RULES_CACHE_SECONDS = 5.0
_watched: dict[str, object] = {"read_at": float("-inf"), "global_": False, "tasks": {}}


def record_run_end(execution, *, will_retry: bool, now: datetime) -> None:
    """A run ended (``executions.services._after_ending``). Failed, timed-out or lost runs always make an
    event; successes only when they may resolve an incident or be checked for a duration anomaly."""
    status = execution.status
    if status in UNSUCCESSFUL_STATUSES:
        _event(Condition.RUN_FAILED, firing=True, execution=execution, now=now,
               details={"status": status, "retry_count": execution.retry_count, "will_retry": will_retry})
    elif status == ExecutionStatus.SUCCESS and _success_matters(execution.task_id):
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


def _event(condition: Condition, *, firing: bool, execution, now: datetime, details: dict) -> None:
    AlertEvent.objects.create(condition=condition, firing=firing, task_id=execution.task_id,
                              execution_id=execution.pk, occurred_at=now, details=details)


def _success_matters(task_id: str) -> bool:
    return _watches_durations(task_id) or Incident.objects.filter(
        task_id=task_id, resolved_at__isnull=True).exists()


def _watches_durations(task_id: str) -> bool:
    if time.monotonic() - _watched["read_at"] > RULES_CACHE_SECONDS:
        rules = AlertRule.objects.filter(Q(key=GLOBAL_RULE_KEY) | Q(task__isnull=False)).values_list(
            "task_id", "enabled", "duration_factor")
        watching = {task: enabled and factor is not None for task, enabled, factor in rules}
        _watched.update(read_at=time.monotonic(), global_=watching.pop(None, False), tasks=watching)
    return _watched["tasks"].get(task_id, _watched.get("global_", False))


def forget_cached_rules() -> None:
    """For tests and for a rule just saved in this process."""
    _watched["read_at"] = float("-inf")
