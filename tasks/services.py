"""Writes to tasks and their executor assignments. Each service is one transaction and takes ``now``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from core.calendars import blackout_at
from core.controls import BackfillTooLarge, plan_backfill
from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from executions.services import retried_on_deadlock, withdraw
from executors.models import Executor
from scheduler_project.config import tunable
from scheduler_project.errors import DomainError, ErrorCode
from tasks.choices import ONE_SHOT_TYPES, ScheduleType, TaskStatus
from tasks.models import BlackoutCalendar, Task, TaskExecutor

_SCHEDULE_FIELDS = {"schedule_type", "cron_expression", "interval_seconds", "start_at", "end_at", "run_at",
                    "timezone"}

# Which status a task may move to from which (a PUT with "status", pause, resume, delete).
_ALLOWED_TRANSITIONS = {
    TaskStatus.ACTIVE: {TaskStatus.ACTIVE, TaskStatus.PAUSED, TaskStatus.DELETED},
    TaskStatus.PAUSED: {TaskStatus.PAUSED, TaskStatus.ACTIVE, TaskStatus.DELETED},
    TaskStatus.DELETED: set(),
}


def next_fire_after(task: Task, now: datetime) -> datetime | None:
    """The first fire strictly after ``now``, or None when the task is not scheduled (or a one-shot is done).

    A ``once`` task fires as soon as it is active: its next fire is ``now`` itself. Workflows share this
    (``workflows.services``); a workflow has no ``end_at``.
    """
    if task.status != TaskStatus.ACTIVE or (task.schedule_type in ONE_SHOT_TYPES and task.finished_at):
        return None
    if task.schedule_type == ScheduleType.ONCE:  # as soon as active, within its window
        start = max(now, task.start_at or now)
        end_at = getattr(task, "end_at", None)
        return None if end_at is not None and start > end_at else start
    return task.schedule().next_after(now)


def check_schedule_fields(task: Task, now: datetime, *, run_at_changed: bool) -> None:
    """The fields each schedule type needs, checked on the task (or workflow, which has no ``end_at``) as it
    will be saved (create or update)."""
    required = {
        ScheduleType.CRON: "cron_expression", ScheduleType.INTERVAL: "interval_seconds", ScheduleType.DATE: "run_at",
    }.get(task.schedule_type)
    if required and not getattr(task, required):
        raise DomainError.invalid(required, f"required when schedule_type is '{task.schedule_type}'", "required")
    if task.schedule_type == ScheduleType.DATE and run_at_changed and task.run_at <= now:
        raise DomainError.invalid("run_at", "must be in the future", "past_run_at")
    if task.schedule_type == ScheduleType.INTERVAL and task.start_at is None:
        task.start_at = now
    end_at = getattr(task, "end_at", None)
    if end_at is not None and task.start_at is not None and end_at <= task.start_at:
        raise DomainError.invalid("end_at", "must be after start_at", "window")


def _locked_task(task_id: str) -> Task:
    try:
        return Task.objects.select_for_update().get(pk=task_id)
    except Task.DoesNotExist:
        raise DomainError(ErrorCode.TASK_NOT_FOUND, f"task '{task_id}' does not exist") from None


def _save_with_unique_name(task: Task, **save_kwargs: Any) -> None:
    conflict = Task.objects.filter(name=task.name).exclude(pk=task.pk).first()
    if conflict is None:
        try:
            with transaction.atomic():
                task.save(**save_kwargs)
            return
        except IntegrityError:
            # Lost a race against a concurrent create with the same name.
            conflict = Task.objects.filter(name=task.name).exclude(pk=task.pk).first()
            if conflict is None:
                raise
    note = " (a deleted task keeps its name)" if conflict.status == TaskStatus.DELETED else ""
    raise DomainError(
        ErrorCode.TASK_NAME_EXISTS,
        f"a task named '{task.name}' already exists{note}",
        {"field": "name", "value": task.name, "constraint": "unique", "existing_task_id": conflict.pk},
    )


def _forbid(task: Task, action: str) -> DomainError:
    return DomainError(
        ErrorCode.TASK_STATE_FORBIDS,
        f"cannot {action} a task whose status is '{task.status}'",
        {"task_id": task.pk, "status": task.status, "action": action},
    )


@transaction.atomic
def task_create(*, data: dict[str, Any], now: datetime, created_by=None, created_by_key=None) -> Task:
    """A new active task; ``created_by`` (a user) and ``created_by_key`` (an ApiKey) record who asked."""
    fields = dict(data)
    calendars = _calendars(fields.pop("calendars", []))
    task = Task(**fields, created_by=created_by, created_by_key=created_by_key)
    task.status = TaskStatus.ACTIVE
    check_schedule_fields(task, now, run_at_changed=True)
    task.next_run_time = next_fire_after(task, now)
    _save_with_unique_name(task, force_insert=True)
    task.calendars.set(calendars)
    return task


def _calendars(calendar_ids: list[str]) -> list[BlackoutCalendar]:
    """The calendars named by id, all of them or a 400 naming the unknown ones."""
    found = list(BlackoutCalendar.objects.filter(pk__in=set(calendar_ids)))
    unknown = sorted(set(calendar_ids) - {calendar.pk for calendar in found})
    if unknown:
        raise DomainError.invalid("calendars", f"no such calendar: {', '.join(unknown)}", "does_not_exist")
    return found


@retried_on_deadlock
@transaction.atomic
def task_update(*, task_id: str, data: dict[str, Any], now: datetime) -> Task:
    task = _locked_task(task_id)
    if task.status == TaskStatus.DELETED:
        raise _forbid(task, "update")
    data = dict(data)
    calendars = _calendars(data.pop("calendars")) if "calendars" in data else None
    new_status = data.get("status", task.status)
    if new_status not in _ALLOWED_TRANSITIONS[task.status]:
        raise _forbid(task, f"set status '{new_status}' on")
    reschedule = new_status != task.status or any(
        field in _SCHEDULE_FIELDS and value != getattr(task, field) for field, value in data.items()
    )
    run_at_changed = "run_at" in data and data["run_at"] != task.run_at
    for field, value in data.items():
        setattr(task, field, value)
    check_schedule_fields(task, now, run_at_changed=run_at_changed)
    if reschedule:
        if run_at_changed or "schedule_type" in data or new_status == TaskStatus.ACTIVE:
            task.finished_at = None  # a new date, a new type, or a resume makes a one-shot pending again
        task.next_run_time = next_fire_after(task, now)
    if new_status == TaskStatus.DELETED:
        _cancel_pending(task, now, reason="task deleted")
    elif reschedule:
        _cancel_fired_ahead(task, now, reason="the task's schedule or status changed")
    _save_with_unique_name(task)
    if calendars is not None:
        task.calendars.set(calendars)
    return task


def _change_status(task_id: str, *, allowed_from: set[str], to: str, action: str, now: datetime) -> tuple[str, str]:
    task = _locked_task(task_id)
    if task.status not in allowed_from:
        raise _forbid(task, action)
    previous = task.status
    task.status = to
    if to == TaskStatus.ACTIVE and task.schedule_type == ScheduleType.ONCE:
        task.finished_at = None  # resuming a once task runs it once more
    task.next_run_time = next_fire_after(task, now)
    task.save(update_fields=["status", "next_run_time", "finished_at", "updated_at"])
    if to == TaskStatus.DELETED:
        _cancel_pending(task, now, reason="task deleted")
    else:
        _cancel_fired_ahead(task, now, reason=f"task {action}d")  # paused, resumed, restored
    return previous, to


@retried_on_deadlock
@transaction.atomic
def task_pause(*, task_id: str, now: datetime) -> tuple[str, str]:
    """Stops scheduling; running executions are not touched (spec 000 §5.7)."""
    return _change_status(task_id, allowed_from={TaskStatus.ACTIVE}, to=TaskStatus.PAUSED, action="pause", now=now)


@retried_on_deadlock
@transaction.atomic
def task_resume(*, task_id: str, now: datetime) -> tuple[str, str]:
    """Schedules again from ``now``: fire times that passed while paused are not made up."""
    return _change_status(task_id, allowed_from={TaskStatus.PAUSED}, to=TaskStatus.ACTIVE, action="resume", now=now)


@retried_on_deadlock
@transaction.atomic
def task_delete(*, task_id: str, now: datetime) -> None:
    """Soft delete: the row and its history stay; scheduling stops and waiting runs are cancelled."""
    _change_status(
        task_id, allowed_from={TaskStatus.ACTIVE, TaskStatus.PAUSED}, to=TaskStatus.DELETED, action="delete", now=now
    )


@retried_on_deadlock
@transaction.atomic
def task_restore(*, task_id: str, now: datetime) -> tuple[str, str]:
    """Undo a soft delete: the task comes back paused, so nothing fires until an operator resumes it."""
    return _change_status(task_id, allowed_from={TaskStatus.DELETED}, to=TaskStatus.PAUSED, action="restore", now=now)


def _cancel_pending(task: Task, now: datetime, *, reason: str) -> None:
    _withdraw(TaskExecution.objects.filter(task=task, status=ExecutionStatus.PENDING), now,
              logs=f"cancelled before dispatch: {reason}")


def _cancel_fired_ahead(task: Task, now: datetime, *, reason: str) -> None:
    """The scheduler creates a task's runs shortly before their time (scheduling.firing, ``ahead``): a run
    whose time has not come belongs to the schedule as it was, so a pause or a new schedule withdraws it."""
    _withdraw(TaskExecution.objects.filter(
        task=task, status=ExecutionStatus.PENDING, trigger_type=TriggerType.SCHEDULED, retry_count=0,
        scheduled_time__gt=now,
    ), now, logs=f"cancelled before its time: {reason}")


def _withdraw(pending, now: datetime, *, logs: str) -> None:
    # Found by a plain read, cancelled by primary key: an UPDATE ranging over the (task, status) index would
    # also lock the index gaps the leader inserts fired runs into, and deadlock with it on MariaDB.
    ids = list(pending.values_list("pk", flat=True))
    if ids:
        withdraw(ids, now=now, logs=logs)


@retried_on_deadlock
@transaction.atomic
def task_trigger(*, task_id: str, parameters: dict[str, Any] | None, now: datetime) -> TaskExecution:
    """A manual run now, bypassing the execution mode (spec 002 §4.1.4); the scheduler dispatches it."""
    task = _locked_task(task_id)
    if task.status == TaskStatus.DELETED:
        raise _forbid(task, "trigger")
    merged = {**(task.parameters or {}), **(parameters or {})}
    scheduled = now
    for _ in range(5):
        execution = TaskExecution(
            task=task, scheduled_time=scheduled, status=ExecutionStatus.PENDING, trigger_type=TriggerType.MANUAL,
            parameters=merged, dispatch_after=now,
        )
        try:
            with transaction.atomic():
                execution.save(force_insert=True)
            return execution
        except IntegrityError:
            # Two triggers in the same microsecond share the unique fire key; nudge this one.
            scheduled += timedelta(microseconds=1)
    raise DomainError(ErrorCode.CONFLICT, "too many simultaneous triggers of this task; try again")


def _executor(executor_id: str) -> Executor:
    try:
        return Executor.objects.get(pk=executor_id)
    except Executor.DoesNotExist:
        raise DomainError(ErrorCode.EXECUTOR_NOT_FOUND, f"executor '{executor_id}' does not exist") from None


def _assignment(task_id: str, executor_id: str) -> TaskExecutor:
    try:
        return TaskExecutor.objects.select_for_update().get(task_id=task_id, executor_id=executor_id)
    except TaskExecutor.DoesNotExist:
        raise DomainError(
            ErrorCode.EXECUTOR_NOT_FOUND,
            f"executor '{executor_id}' is not assigned to task '{task_id}'",
            {"task_id": task_id, "executor_id": executor_id},
        ) from None


@transaction.atomic
def assignment_create(*, task_id: str, executor_id: str, priority: int = 0, weight: int = 1) -> TaskExecutor:
    task = _locked_task(task_id)
    if task.status == TaskStatus.DELETED:
        raise _forbid(task, "assign executors to")
    executor = _executor(executor_id)
    if TaskExecutor.objects.filter(task=task, executor=executor).exists():
        raise DomainError(ErrorCode.CONFLICT, f"executor '{executor_id}' is already assigned to task '{task_id}'")
    return TaskExecutor.objects.create(task=task, executor=executor, priority=priority, weight=weight)


@transaction.atomic
def assignment_update(*, task_id: str, executor_id: str, data: dict[str, Any]) -> TaskExecutor:
    _locked_task(task_id)
    assignment = _assignment(task_id, executor_id)
    for field, value in data.items():
        setattr(assignment, field, value)
    assignment.save()
    return assignment


@transaction.atomic
def assignment_delete(*, task_id: str, executor_id: str) -> None:
    _locked_task(task_id)
    _assignment(task_id, executor_id).delete()


# --- backfill: an operator's "run every fire time between A and B" -----------------------------------

@dataclass(frozen=True)
class BackfillResult:
    task_id: str
    start_time: datetime
    end_time: datetime
    fire_times: int  # fire times of the schedule in the range
    created: int  # runs created by this request (pending)
    skipped: int  # fire times in a blackout, recorded as skipped by this request
    existing: int  # fire times an earlier backfill already recorded: left alone


@retried_on_deadlock
@transaction.atomic
def task_backfill(*, task_id: str, start: datetime, end: datetime, now: datetime) -> BackfillResult:
    """Record a run (trigger ``backfill``, its original scheduled time) for every fire time of the task's
    schedule, within its window, in [start, end]; the dispatcher runs them with the task's mode and
    max_instances (``core.policy.dispatch_limit``: they wait their turn, never skip). Fire times in a
    blackout calendar are recorded as skipped. The fire's unique key (task, scheduled time, trigger,
    attempt) makes a repeated request create nothing new. More than BACKFILL_LIMIT fire times: refused."""
    task = _locked_task(task_id)
    if task.status == TaskStatus.DELETED:
        raise _forbid(task, "backfill")
    limit = tunable("BACKFILL_LIMIT")
    try:
        times = plan_backfill(task.schedule(), start, end, limit)
    except BackfillTooLarge as exc:
        raise DomainError.invalid("end_time", str(exc), "max_fires") from None
    except ValueError as exc:
        raise DomainError.invalid("end_time", str(exc), "range") from None
    existing = set(TaskExecution.objects.filter(task=task, trigger_type=TriggerType.BACKFILL, retry_count=0,
                                                scheduled_time__in=times).values_list("scheduled_time", flat=True))
    rows = [_backfill_run(task, t, now, start, end) for t in times if t not in existing]
    created = _insert_new(rows)
    return BackfillResult(
        task_id=task.pk, start_time=start, end_time=end, fire_times=len(times),
        created=sum(1 for row in created if row.status == ExecutionStatus.PENDING),
        skipped=sum(1 for row in created if row.status == ExecutionStatus.SKIPPED),
        existing=len(times) - len(created),
    )


def _backfill_run(task: Task, scheduled: datetime, now: datetime, start: datetime, end: datetime) -> TaskExecution:
    note = f"backfill of {start.isoformat()} .. {end.isoformat()}"
    blackout = blackout_at(task.blackouts(), scheduled)
    if blackout is not None:
        return TaskExecution(task=task, scheduled_time=scheduled, trigger_type=TriggerType.BACKFILL,
                             status=ExecutionStatus.SKIPPED, parameters=task.parameters or {},
                             dispatch_after=now, end_time=now, logs=f"{note}\nblackout: {blackout}")
    return TaskExecution(task=task, scheduled_time=scheduled, trigger_type=TriggerType.BACKFILL,
                         status=ExecutionStatus.PENDING, parameters=task.parameters or {}, dispatch_after=now,
                         logs=note)


def _insert_new(rows: list[TaskExecution]) -> list[TaskExecution]:
    """Insert the rows; a concurrent backfill of the same range may have inserted some meanwhile (the unique
    fire key): then each is tried alone and the ones already there are left out."""
    try:
        with transaction.atomic():
            TaskExecution.objects.bulk_create(rows)
        return rows
    except IntegrityError:
        inserted = []
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                inserted.append(row)
            except IntegrityError:
                continue
        return inserted


# --- blackout calendars ------------------------------------------------------------------------------

def _calendar(calendar_id: str) -> BlackoutCalendar:
    try:
        return BlackoutCalendar.objects.select_for_update().get(pk=calendar_id)
    except BlackoutCalendar.DoesNotExist:
        raise DomainError(ErrorCode.NOT_FOUND, f"calendar '{calendar_id}' does not exist") from None


def _save_calendar(calendar: BlackoutCalendar) -> BlackoutCalendar:
    if BlackoutCalendar.objects.filter(name=calendar.name).exclude(pk=calendar.pk).exists():
        raise DomainError(ErrorCode.CONFLICT, f"a calendar named '{calendar.name}' already exists",
                          {"field": "name", "value": calendar.name, "constraint": "unique"})
    try:
        with transaction.atomic():
            calendar.save()
    except IntegrityError:  # a concurrent create with the same name
        raise DomainError(ErrorCode.CONFLICT, f"a calendar named '{calendar.name}' already exists") from None
    return calendar


@transaction.atomic
def calendar_create(*, data: dict[str, Any]) -> BlackoutCalendar:
    """A named blackout calendar; entries are checked by the serializer (core.calendars.parse_entry)."""
    return _save_calendar(BlackoutCalendar(**data))


@transaction.atomic
def calendar_update(*, calendar_id: str, data: dict[str, Any]) -> BlackoutCalendar:
    """Takes effect at the tasks' next fires: membership is decided when a fire is due."""
    calendar = _calendar(calendar_id)
    for name, value in data.items():
        setattr(calendar, name, value)
    return _save_calendar(calendar)


@transaction.atomic
def calendar_delete(*, calendar_id: str) -> None:
    """The tasks that referenced it fire through its times again."""
    _calendar(calendar_id).delete()
