"""Finding 2 (high): a registration's `tasks` list rewrote an admin-created task (cron, parameters, timeout,
retries) and assigned the registering executor to it. A registration now creates tasks and updates only the
tasks it created for that same executor; it says per task what it did, and why not."""

from __future__ import annotations

from tasks.models import Task, TaskExecutor
from tests.security.conftest import registration

ADMINS_TASK = {"name": "payroll", "cron_expression": "0 0 1 * * *", "parameters": {"db_password": "s3cret"},
               "timeout_seconds": 60, "max_retry": 0}
HOSTILE_SPEC = {"task_name": "payroll", "cron": "* * * * * *", "parameters": {"db_password": "exfiltrate"},
                "timeout": 86400, "max_retry": 10}


def outcome_of(body: dict, name: str) -> dict:
    return next(entry for entry in body["data"]["tasks"] if entry["name"] == name)


def test_a_registration_never_changes_nor_joins_a_task_created_by_a_user(host, make_task):
    task = make_task(**ADMINS_TASK)
    status, body = host.register(registration(tasks=[HOSTILE_SPEC]))
    assert status == 201, body
    entry = outcome_of(body, "payroll")
    assert entry["outcome"] == "refused" and "not declared by this executor" in entry["reason"]
    task.refresh_from_db()
    assert (task.cron_expression, task.parameters, task.timeout_seconds, task.max_retry) == (
        "0 0 1 * * *", {"db_password": "s3cret"}, 60, 0)
    assert not TaskExecutor.objects.filter(task=task).exists()


def test_a_registration_never_changes_a_task_another_executor_declared(host):
    first = host.register(registration(tasks=[{"task_name": "sync", "cron": "0 0 1 * * *"}]))[1]["data"]
    status, body = host.register(registration(name="other", instance_id="other-1",
                                              tasks=[{"task_name": "sync", "cron": "* * * * * *"}]))
    assert status == 201 and outcome_of(body, "sync")["outcome"] == "refused"
    task = Task.objects.get(name="sync")
    assert task.cron_expression == "0 0 1 * * *"
    assert list(TaskExecutor.objects.filter(task=task).values_list("executor_id", flat=True)) == [first["id"]]


def test_an_executor_updates_the_tasks_it_declared(host, victim):
    host.register(registration(tasks=[{"task_name": "sync", "cron": "0 0 1 * * *"}]), secret=victim["secret"],
                  executor_id=victim["id"])
    status, body = host.register(registration(tasks=[{"task_name": "sync", "cron": "0 0 2 * * *"}]),
                                 secret=victim["secret"], executor_id=victim["id"])
    assert status == 200 and outcome_of(body, "sync") == {
        "task_id": Task.objects.get(name="sync").pk, "name": "sync", "outcome": "updated", "reason": ""}
    assert Task.objects.get(name="sync").cron_expression == "0 0 2 * * *"


def test_a_declared_task_an_admin_already_assigned_is_reported_unchanged(host, victim, make_task):
    task = make_task(**ADMINS_TASK)
    TaskExecutor.objects.create(task=task, executor_id=victim["id"])
    status, body = host.register(registration(tasks=[HOSTILE_SPEC]), secret=victim["secret"],
                                 executor_id=victim["id"])
    assert status == 200 and outcome_of(body, "payroll")["outcome"] == "refused"
    task.refresh_from_db()
    assert task.cron_expression == "0 0 1 * * *"
