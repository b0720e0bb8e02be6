"""Firing: turn due cron times into executions, exactly once per (task, scheduled_time).

The due-time heap is the database: ``tasks.next_run_time`` under an index on (status, next_run_time).
Each tick reads only the due rows, so its cost follows the number of due tasks, not the number of
tasks, and it sees every change however it was made (API, admin, ``queryset.update``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from scheduling.config import tunable
from scheduling.cron import CronError
from scheduling.metrics import observe_fire_lateness
from scheduling.policy import FireAction, FirePlan, decide_fire, plan_fires
from tasks.choices import ONE_SHOT_TYPES, ExecutionMode, TaskStatus
from tasks.models import Task

logger = logging.getLogger(__name__)

# When a task's schedule cannot be evaluated, look at it again after this long instead of every tick.
BROKEN_TASK_RETRY = timedelta(minutes=1)


def due_tasks(now: datetime, limit: int) -> list[Task]:
    return list(
        Task.objects.filter(status=TaskStatus.ACTIVE, next_run_time__lte=now)
        .order_by("next_run_time", "-priority")[:limit]
    )


def _busy_counts(task: Task) -> tuple[int, int]:
    row = TaskExecution.objects.filter(
        task=task, status__in=[ExecutionStatus.RUNNING, ExecutionStatus.PENDING]
    ).aggregate(
        running=Count("id", filter=Q(status=ExecutionStatus.RUNNING)),
        waiting=Count("id", filter=Q(status=ExecutionStatus.PENDING)),
    )
    return row["running"], row["waiting"]


def _execution(task: Task, scheduled: datetime, now: datetime, *, status: str, logs: str = "") -> TaskExecution:
    finished = status != ExecutionStatus.PENDING
    return TaskExecution(
        task=task, scheduled_time=scheduled, status=status, trigger_type=TriggerType.SCHEDULED,
        parameters=task.parameters or {}, dispatch_after=now, logs=logs, end_time=now if finished else None,
    )


def _misfire_note(plan: FirePlan, policy: str) -> str:
    more = " or more" if plan.more_missed else ""
    return f"misfire: {plan.missed}{more} fire time(s) passed while no scheduler was leading (policy {policy})"


def executions_for(task: Task, plan: FirePlan, now: datetime) -> list[TaskExecution]:
    """The rows one task's plan produces: skipped misfires, then each run through the execution mode."""
    note = _misfire_note(plan, task.misfire_policy) if plan.missed else ""
    rows = [_execution(task, t, now, status=ExecutionStatus.SKIPPED, logs=note) for t in plan.skip]
    uncapped = task.execution_mode == ExecutionMode.PARALLEL and task.max_instances is None
    running, waiting = (0, 0) if uncapped else _busy_counts(task)
    for scheduled in plan.run:
        decision = decide_fire(task.execution_mode, running=running, waiting=waiting,
                               max_instances=task.max_instances)
        if decision.action is FireAction.QUEUE:
            rows.append(_execution(task, scheduled, now, status=ExecutionStatus.PENDING, logs=note))
            waiting += 1
        else:  # keep the misfire note: under fire_once this row is the only record of the missed times
            logs = f"{note}\n{decision.reason}" if note else decision.reason
            rows.append(_execution(task, scheduled, now, status=ExecutionStatus.SKIPPED, logs=logs))
    return rows


def fire_task(task: Task, now: datetime) -> int:
    """Fire one due task: advance its next_run_time and insert its executions in one transaction.

    The advance is a compare-and-set on the next_run_time we read, so an edit made meanwhile (API,
    another leader) wins and this fire is re-planned next tick; the unique fire key stops a split-brain
    leader from inserting the same fire twice. Returns the number of executions written.
    """
    schedule = task.schedule()
    plan = plan_fires(
        first_due=task.next_run_time, now=now, next_after=schedule.next_after, prev_before=schedule.prev_before,
        policy=task.misfire_policy, misfire_threshold=timedelta(seconds=tunable("MISFIRE_THRESHOLD_SECONDS")),
        limit=tunable("MISFIRE_FIRE_ALL_LIMIT"),
    )
    try:
        with transaction.atomic():
            done = plan.next_run_time is None and task.schedule_type in ONE_SHOT_TYPES
            advanced = Task.objects.filter(
                pk=task.pk, status=TaskStatus.ACTIVE, next_run_time=task.next_run_time
            ).update(next_run_time=plan.next_run_time, **({"finished_at": now} if done else {}))
            if not advanced:
                return 0
            rows = executions_for(task, plan, now)
            TaskExecution.objects.bulk_create(rows)
    except IntegrityError:
        logger.warning("task %s (%s): fire at %s already recorded by another node", task.pk, task.name,
                       task.next_run_time.isoformat(), extra=task.log_extra())
        return 0
    for scheduled in plan.run:
        observe_fire_lateness((now - scheduled).total_seconds())
    if plan.missed:
        logger.warning("task %s (%s): %s", task.pk, task.name, _misfire_note(plan, task.misfire_policy),
                       extra=task.log_extra())
    return len(rows)


def _park_broken_task(task: Task, now: datetime, error: Exception) -> None:
    """One bad task logs and moves its next run forward; it never crash-loops the scheduler."""
    logger.error("task %s (%s): cannot fire: %s; retrying in %s", task.pk, task.name, error, BROKEN_TASK_RETRY,
                 extra=task.log_extra())
    Task.objects.filter(pk=task.pk, next_run_time=task.next_run_time).update(next_run_time=now + BROKEN_TASK_RETRY)


def fire_due(now: datetime) -> int:
    """Step: fire every task due at ``now`` (in batches of FIRE_BATCH_SIZE). Returns executions written."""
    written = 0
    for task in due_tasks(now, tunable("FIRE_BATCH_SIZE")):
        try:
            written += fire_task(task, now)
        except (CronError, ValueError) as exc:
            _park_broken_task(task, now, exc)
    return written
