"""Writes to executors: registration (with declared tasks), updates, status, deletion."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from core.policy import HealthState, next_health
from executors.choices import ExecutorStatus
from executors.models import Executor, RevokedInstance
from scheduler_project.errors import DomainError, ErrorCode
from scheduler_sdk.signing import new_secret
from tasks.choices import TaskStatus
from tasks.models import Task, TaskExecutor
from tasks.services import next_fire_after

logger = logging.getLogger(__name__)

SHUT_DOWN_BY_EXECUTOR = "shut down by the executor"  # the status reason of an executor that said it stopped


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


@dataclass(frozen=True)
class Proof:
    """A registration request signed with the secret of executor ``executor_id`` (``executors.channel``)."""

    executor_id: str
    secret: str


class UnprovenRegistration(DomainError):
    """Registering an instance id that exists (or was revoked) without the right to: counted like a failed
    authentication. Says nothing about the executor that holds the id."""

    def __init__(self, instance_id: str, why: str) -> None:
        super().__init__(ErrorCode.EXECUTOR_INSTANCE_EXISTS, f"instance_id '{instance_id}' {why}",
                         {"field": "instance_id", "value": instance_id, "constraint": "unique"})


_NEEDS_PROOF = ("is registered already: re-registering it needs the request signed with that executor's secret "
                "(X-Scheduler-Signature, as its callbacks), or an admin")


def _may_register(instance_id: str, name: str, executor: Executor | None, *, by_admin: bool,
                  proof: Proof | None) -> None:
    """Refuses (UnprovenRegistration) unless the registration may create or re-register ``instance_id``.

    The shared registration key and the executor role only create executors: anything that exists, or that
    an admin revoked or deleted, needs an admin or the executor's own secret (and a revocation only an admin).
    """
    revoked = RevokedInstance.objects.filter(instance_id=instance_id)
    if by_admin:
        revoked.delete()  # an admin registering it is an admin lifting the revocation
        if executor is not None and executor.name != name:
            raise UnprovenRegistration(instance_id, "is registered under another name")
        return
    if revoked.exists():
        raise UnprovenRegistration(instance_id, "was revoked by an admin: only an admin can register it again")
    if executor is None:
        return
    if proof is None or proof.executor_id != executor.pk or not _proves(executor, proof.secret):
        raise UnprovenRegistration(instance_id, _NEEDS_PROOF)
    if executor.name != name:
        raise UnprovenRegistration(instance_id, "is registered under another name")


def _proves(executor: Executor, secret: str) -> bool:
    """Whether ``secret`` is the executor's secret, or the one an admin rotated away and it still holds."""
    return any(known and hmac.compare_digest(secret.encode(), known.encode())
               for known in (executor.secret, executor.previous_secret))


_TASK_FIELDS = {
    "cron": "cron_expression", "execution_mode": "execution_mode", "load_balance_strategy": "load_balance_strategy",
    "timeout": "timeout_seconds", "max_retry": "max_retry", "parameters": "parameters",
    "misfire_policy": "misfire_policy",
}
_NOT_DECLARED_HERE = ("not declared by this executor (created by a user, an API key or another executor): a "
                      "registration changes only the tasks it created; an admin assigns executors to others")


def _declared(task: Task, outcome: str, reason: str = "") -> dict[str, Any]:
    return {"task_id": task.pk, "name": task.name, "outcome": outcome, "reason": reason}


def _declare_task(executor: Executor, spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Creates a task an executor declares (assigned to it), or updates one this executor declared before.
    Any other task of that name is left exactly as it is, assignments included."""
    values = {model_field: spec[key] for key, model_field in _TASK_FIELDS.items() if key in spec}
    task = Task.objects.select_for_update().filter(name=spec["task_name"]).first()
    if task is None:
        task = Task(name=spec["task_name"], declared_by=executor, **values)
        task.next_run_time = next_fire_after(task, now)
        task.save(force_insert=True)
        outcome = "created"
    elif task.status == TaskStatus.DELETED:
        logger.warning("executor %s declares deleted task %r; left deleted", executor.instance_id, task.name)
        return _declared(task, "skipped_deleted", "the task is deleted")
    elif task.declared_by_id != executor.pk:
        return _declared(task, "refused", _NOT_DECLARED_HERE)
    else:
        cron_changed = values.get("cron_expression", task.cron_expression) != task.cron_expression
        for name, value in values.items():
            setattr(task, name, value)
        if cron_changed:
            task.next_run_time = next_fire_after(task, now)
        task.save()
        outcome = "updated"
    TaskExecutor.objects.get_or_create(task=task, executor=executor)
    return _declared(task, outcome)


@transaction.atomic
def executor_register(*, data: dict[str, Any], now: datetime, by_admin: bool = False,
                      proof: Proof | None = None) -> Registration:
    """Register a new executor, or re-register one that restarted (same instance_id and name: updated in place).

    Re-registering needs ``by_admin`` or a ``proof`` signed with that executor's secret (``_may_register``);
    a proof made with the secret an admin rotated away hands over the new one, once. The status an admin set
    (offline, maintenance) is kept. The executor and every task it declares are written in one transaction.
    """
    task_specs = data.pop("tasks", [])
    health_url = data.get("health_check_url") or default_health_url(data["base_url"])
    executor = Executor.objects.select_for_update().filter(instance_id=data["instance_id"]).first()
    _may_register(data["instance_id"], data["name"], executor, by_admin=by_admin, proof=proof)
    created = executor is None
    if executor is None:
        executor = Executor(name=data["name"], instance_id=data["instance_id"])
    executor.previous_secret = ""  # the current secret is handed over now: an old one proves nothing more
    executor.base_url = data["base_url"]
    executor.health_check_url = health_url
    executor.metadata = data.get("metadata", executor.metadata or {})
    executor.labels = data.get("labels", executor.labels or {})
    executor.execute_batch_limit = data.get("execute_batch_limit", 0)  # what this process of it takes
    if executor.status == ExecutorStatus.OFFLINE and executor.status_reason == SHUT_DOWN_BY_EXECUTOR:
        # It said it was stopping (executor_shut_down): registering again brings it back. An admin's offline stays.
        executor.status = ExecutorStatus.ONLINE
        executor.status_reason = "re-registered"
    if not created:  # registering again counts as one successful check: the recovery threshold still applies
        _count_one_success(executor)
    executor.last_health_check = None  # checked right after registering (spec 002)
    try:
        with transaction.atomic():
            executor.save(force_insert=created)
    except IntegrityError:
        raise DomainError(
            ErrorCode.EXECUTOR_INSTANCE_EXISTS, f"instance_id '{data['instance_id']}' was registered concurrently"
        ) from None
    declared = [_declare_task(executor, spec, now) for spec in task_specs]
    return Registration(executor=executor, created=created, tasks=declared)


def _count_one_success(executor: Executor) -> None:
    state = next_health(
        HealthState(executor.is_healthy, executor.health_check_failures, executor.health_check_successes), ok=True,
        failure_threshold=settings.SCHEDULER["HEALTH_FAILURE_THRESHOLD"],
        recovery_threshold=settings.SCHEDULER["HEALTH_RECOVERY_THRESHOLD"])
    executor.is_healthy, executor.health_check_failures = state.is_healthy, state.failures
    executor.health_check_successes = state.successes


@transaction.atomic
def executor_shut_down(*, executor_id: str) -> Executor:
    """The executor says it is stopping: offline at once (no dispatches) until it registers again. Runs it
    still had are reported by it, or lost when their leases run out."""
    executor = get_executor(executor_id, for_update=True)
    if executor.status == ExecutorStatus.ONLINE:
        executor.status = ExecutorStatus.OFFLINE
        executor.status_reason = SHUT_DOWN_BY_EXECUTOR
        executor.save(update_fields=["status", "status_reason", "updated_at"])
        logger.info("executor %s (%s) shut down", executor.name, executor.instance_id)
    return executor


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
    refused from now on, both ways, until the executor re-registers with a request signed with the secret it
    holds (the old one, or an older one it never replaced) and so receives the new one."""
    executor = get_executor(executor_id, for_update=True)
    executor.previous_secret = executor.previous_secret or executor.secret
    executor.secret = new_secret()
    executor.save(update_fields=["secret", "previous_secret", "updated_at"])
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
def executor_revoke(*, executor_id: str, now: datetime) -> Executor:
    """Takes an executor out until an admin registers it again: offline, a new secret that nobody holds (the
    old ones prove nothing), and its instance id registrable by an admin only."""
    executor = get_executor(executor_id, for_update=True)
    executor.secret, executor.previous_secret = new_secret(), ""
    executor.status, executor.status_reason = ExecutorStatus.OFFLINE, "revoked by an admin"
    executor.save(update_fields=["secret", "previous_secret", "status", "status_reason", "updated_at"])
    _remember_revoked(executor.instance_id, "revoked", now)
    logger.warning("executor %s (%s) revoked", executor.name, executor.instance_id)
    return executor


def _remember_revoked(instance_id: str, reason: str, now: datetime) -> None:
    RevokedInstance.objects.update_or_create(instance_id=instance_id,
                                             defaults={"reason": reason, "revoked_at": now})


@transaction.atomic
def executor_delete(*, executor_id: str, now: datetime) -> None:
    """Deletes the executor and its assignments; its executions keep their history with no executor. Its
    instance id is then registrable by an admin only (or the shared key would simply create it again)."""
    executor = get_executor(executor_id, for_update=True)
    _remember_revoked(executor.instance_id, "deleted", now)
    executor.delete()
