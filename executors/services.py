"""Writes to executors: registration (with declared tasks), updates, status, deletion."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from executors.choices import ExecutorStatus
from executors.models import Executor
from scheduler_project.errors import DomainError, ErrorCode
from scheduler_sdk.signing import new_secret
from tasks.choices import TaskStatus
from tasks.models import Task, TaskExecutor
from tasks.services import next_fire_after

logger = logging.getLogger(__name__)


def default_health_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/health"


def get_executor(executor_id: str, *, for_update: bool = False) -> Executor:
    queryset = Executor.objects.select_for_update() if for_update else Executor.objects.all()
    try:
        return queryset.get(pk=executor_id)
    except Executor.DoesNotExist:
        raise DomainError(ErrorCode.EXECUTOR_NOT_FOUND, f"executor '{executor_id}' does not exist") from None


@dataclass
class Registration:
    executor: Executor
    created: bool
    tasks: list[dict[str, Any]] = field(default_factory=list)


_TASK_FIELDS = {
    "cron": "cron_expression", "execution_mode": "execution_mode", "load_balance_strategy": "load_balance_strategy",
    "timeout": "timeout_seconds", "max_retry": "max_retry", "parameters": "parameters",
    "misfire_policy": "misfire_policy",
}


def _declare_task(executor: Executor, spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Create or update a task an executor declares, and assign the executor to it."""
    values = {model_field: spec[key] for key, model_field in _TASK_FIELDS.items() if key in spec}
    task = Task.objects.select_for_update().filter(name=spec["task_name"]).first()
    if task is not None and task.status == TaskStatus.DELETED:
        logger.warning("executor %s declares deleted task %r; left deleted", executor.instance_id, task.name)
        return {"task_id": task.pk, "name": task.name, "outcome": "skipped_deleted"}
    if task is None:
        task = Task(name=spec["task_name"], **values)
        task.next_run_time = next_fire_after(task, now)
        task.save(force_insert=True)
        outcome = "created"
    else:
        cron_changed = values.get("cron_expression", task.cron_expression) != task.cron_expression
        for name, value in values.items():
            setattr(task, name, value)
        if cron_changed:
            task.next_run_time = next_fire_after(task, now)
        task.save()
        outcome = "updated"
    TaskExecutor.objects.get_or_create(task=task, executor=executor)
    return {"task_id": task.pk, "name": task.name, "outcome": outcome}


@transaction.atomic
def executor_register(*, data: dict[str, Any], now: datetime) -> Registration:
    """Register, or re-register an executor that restarted (same instance_id and name: updated in place).

    The executor and every task it declares are written in one transaction: all or nothing. A new executor
    gets a new signing secret; a re-registering one keeps its secret, so messages already signed with it
    (a result still being retried, a dispatch in flight) stay valid.
    """
    task_specs = data.pop("tasks", [])
    health_url = data.get("health_check_url") or default_health_url(data["base_url"])
    executor = Executor.objects.select_for_update().filter(instance_id=data["instance_id"]).first()
    created = executor is None
    if executor is not None and executor.name != data["name"]:
        raise DomainError(
            ErrorCode.EXECUTOR_INSTANCE_EXISTS,
            f"instance_id '{data['instance_id']}' belongs to executor '{executor.name}'",
            {"field": "instance_id", "value": data["instance_id"], "constraint": "unique",
             "existing_executor_id": executor.pk},
        )
    if executor is None:
        executor = Executor(name=data["name"], instance_id=data["instance_id"])
    executor.base_url = data["base_url"]
    executor.health_check_url = health_url
    executor.metadata = data.get("metadata", executor.metadata or {})
    if executor.status == ExecutorStatus.OFFLINE:
        # Coming back is the point of re-registering; maintenance stays until an operator lifts it.
        executor.status = ExecutorStatus.ONLINE
        executor.status_reason = "re-registered"
    executor.is_healthy = True
    executor.health_check_failures = 0
    executor.health_check_successes = 0
    try:
        with transaction.atomic():
            executor.save(force_insert=created)
    except IntegrityError:
        raise DomainError(
            ErrorCode.EXECUTOR_INSTANCE_EXISTS, f"instance_id '{data['instance_id']}' was registered concurrently"
        ) from None
    declared = [_declare_task(executor, spec, now) for spec in task_specs]
    return Registration(executor=executor, created=created, tasks=declared)


@transaction.atomic
def executor_update(*, executor_id: str, data: dict[str, Any]) -> Executor:
    executor = get_executor(executor_id, for_update=True)
    if "base_url" in data and "health_check_url" not in data:
        # A health URL derived from the old base URL follows it; an explicit one is kept.
        if executor.health_check_url in ("", default_health_url(executor.base_url)):
            data["health_check_url"] = default_health_url(data["base_url"])
    if data.get("health_check_url") == "":
        data["health_check_url"] = default_health_url(data.get("base_url", executor.base_url))
    for name, value in data.items():
        setattr(executor, name, value)
    executor.save()
    return executor


@transaction.atomic
def executor_rotate_secret(*, executor_id: str) -> Executor:
    """Replaces the executor's signing secret (e.g. after a leak). Messages signed with the old one are
    refused from now on, both ways, until the executor re-registers and so receives the new one."""
    executor = get_executor(executor_id, for_update=True)
    executor.secret = new_secret()
    executor.save(update_fields=["secret", "updated_at"])
    logger.warning("signing secret of executor %s (%s) rotated; it must re-register", executor.name,
                   executor.instance_id)
    return executor


@transaction.atomic
def executor_set_status(*, executor_id: str, status: str, reason: str = "") -> tuple[Executor, str]:
    executor = get_executor(executor_id, for_update=True)
    previous = executor.status
    executor.status = status
    executor.status_reason = reason
    executor.save(update_fields=["status", "status_reason", "updated_at"])
    return executor, previous


@transaction.atomic
def executor_delete(*, executor_id: str) -> None:
    """Deletes the executor and its assignments; its executions keep their history with no executor."""
    get_executor(executor_id, for_update=True).delete()
