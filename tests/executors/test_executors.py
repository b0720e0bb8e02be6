"""Spec 000 §6 (and spec 004's registration with a task list): executors."""

from __future__ import annotations

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from executors import services as executor_services
from executors.models import Executor
from scheduler_project.errors import DomainError, ErrorCode
from tasks.models import Task, TaskExecutor
from tests.helpers import (
    PAGE_KEYS,
    assert_error,
    assert_executor_shape,
    assert_ok,
    parse_iso,
    same_instant,
)

EXECUTORS = "/api/v1/executors"
REGISTER = f"{EXECUTORS}/register"


def registration(**fields):
    return {
        "name": "data-processor-2", "instance_id": "dp-002", "base_url": "http://192.168.1.101:9090",
        **fields,
    }


# --- list / get -----------------------------------------------------------------------------------------------


def test_list_executors_answers_spec_fields_with_paging_beside_data(api, make_executor):
    make_executor(metadata={"region": "us-west-1", "capacity": 10})
    make_executor()
    status, body = api.get(EXECUTORS)
    data = assert_ok(status, body)
    assert len(data) == 2
    assert PAGE_KEYS <= set(body) and body["total"] == 2
    for executor in data:
        assert_executor_shape(executor)
        assert "task_executors" not in executor
    assert {"region": "us-west-1", "capacity": 10} in [executor["metadata"] for executor in data]


@pytest.mark.parametrize("wanted", ["online", "offline", "maintenance"])
def test_list_executors_filters_by_status(api, make_executor, wanted):
    executors = {status: make_executor(status=status) for status in ("online", "offline", "maintenance")}
    assert [e["id"] for e in assert_ok(*api.get(EXECUTORS, {"status": wanted}))] == [executors[wanted].pk]


def test_list_executors_with_include_tasks_carries_their_assignments(api, make_executor, make_task):
    executor = make_executor()
    task = make_task(name="data_sync_task")
    TaskExecutor.objects.create(task=task, executor=executor, priority=1, weight=2)
    [listed] = assert_ok(*api.get(EXECUTORS, {"include_tasks": "true"}))
    [assignment] = listed["task_executors"]
    assert assignment["task_id"] == task.pk
    assert (assignment["priority"], assignment["weight"]) == (1, 2)
    assert assignment["task"] == {"id": task.pk, "name": "data_sync_task", "status": "active"}


def test_get_executor_answers_detail_with_task_executors_as_in_spec(api, make_executor, make_task):
    executor = make_executor(name="data-processor-1", instance_id="dp-001", base_url="http://192.168.1.100:9090")
    task = make_task(name="data_sync_task")
    assignment = TaskExecutor.objects.create(task=task, executor=executor, priority=1, weight=2)
    data = assert_ok(*api.get(f"{EXECUTORS}/{executor.pk}"))
    assert_executor_shape(data)
    assert (data["id"], data["name"], data["instance_id"]) == (executor.pk, "data-processor-1", "dp-001")
    assert data["health_check_url"] == "http://192.168.1.100:9090/health"
    assert data["task_executors"] == [{
        "id": assignment.pk, "task_id": task.pk, "priority": 1, "weight": 2,
        "task": {"id": task.pk, "name": "data_sync_task", "status": "active"},
    }]


def test_get_unknown_executor_answers_404_20001(api):
    assert_error(*api.get(f"{EXECUTORS}/exec-404"), 404, 20001, path=f"{EXECUTORS}/exec-404")


# --- register -------------------------------------------------------------------------------------------------


def test_register_new_executor_answers_201_执行器注册成功_online_and_healthy(api):
    request = registration(health_check_url="http://192.168.1.101:9090/health",
                           metadata={"region": "us-west-1", "capacity": 15, "tags": ["data-processing", "etl"]})
    data = assert_ok(*api.post(REGISTER, request), http_status=201, message="执行器注册成功")
    assert_executor_shape(data)
    for key, value in request.items():
        assert data[key] == value, key
    assert (data["status"], data["is_healthy"], data["last_health_check"], data["health_check_failures"]) == (
        "online", True, None, 0,
    )
    stored = Executor.objects.get(pk=data["id"])
    assert (stored.instance_id, stored.status, stored.metadata["capacity"]) == ("dp-002", "online", 15)


@pytest.mark.parametrize(("base_url", "health"), [
    ("http://192.168.1.101:9090", "http://192.168.1.101:9090/health"),
    ("http://192.168.1.101:9090/", "http://192.168.1.101:9090/health"),
    ("http://localhost:9090/agent", "http://localhost:9090/agent/health"),
])
def test_register_without_health_check_url_defaults_to_base_url_slash_health(api, base_url, health):
    data = assert_ok(*api.post(REGISTER, registration(base_url=base_url)), http_status=201, message="执行器注册成功")
    assert data["health_check_url"] == health
    assert Executor.objects.get(pk=data["id"]).health_check_url == health


def test_register_with_a_single_label_host_name_is_accepted(api):
    # Executors in a Docker Compose network are reached by service name.
    data = assert_ok(*api.post(REGISTER, registration(base_url="http://executor-1:9090")), http_status=201,
                     message="执行器注册成功")
    assert data["health_check_url"] == "http://executor-1:9090/health"


def test_reregister_same_instance_id_and_name_answers_200_and_updates_in_place(api, make_executor):
    executor = make_executor(name="data-processor-2", instance_id="dp-002", base_url="http://10.0.0.1:9090",
                             metadata={"version": "1.0.0"}, is_healthy=False, health_check_failures=4)
    data = assert_ok(*api.post(REGISTER, registration(base_url="http://10.0.0.2:9091", metadata={"version": "1.0.1"})),
                     message="执行器注册成功")
    assert data["id"] == executor.pk
    assert (data["base_url"], data["health_check_url"]) == ("http://10.0.0.2:9091", "http://10.0.0.2:9091/health")
    assert data["metadata"] == {"version": "1.0.1"}
    # Registering again counts as one successful check: the recovery threshold (2) still applies.
    assert (data["is_healthy"], data["health_check_failures"]) == (False, 0)
    executor.refresh_from_db()
    assert executor.health_check_successes == 1 and executor.last_health_check is None  # checked at once
    assert same_instant(data["created_at"], executor.created_at)
    assert Executor.objects.filter(instance_id="dp-002").count() == 1


def test_reregister_of_an_offline_executor_keeps_it_offline(api, make_executor):
    # Only an admin sets an executor offline, and only an admin brings it back (tests/security).
    make_executor(name="data-processor-2", instance_id="dp-002", status="offline")
    assert assert_ok(*api.post(REGISTER, registration()), message="执行器注册成功")["status"] == "offline"


def test_reregister_of_an_executor_in_maintenance_keeps_maintenance(api, make_executor):
    make_executor(name="data-processor-2", instance_id="dp-002", status="maintenance")
    assert assert_ok(*api.post(REGISTER, registration()), message="执行器注册成功")["status"] == "maintenance"


def test_register_existing_instance_id_under_another_name_answers_409_20002_and_changes_nothing(api, make_executor):
    executor = make_executor(name="data-processor-1", instance_id="dp-002", base_url="http://10.0.0.1:9090")
    error = assert_error(*api.post(REGISTER, registration(name="impostor", base_url="http://10.6.6.6:1")), 409, 20002,
                         path=REGISTER)
    assert error["details"]["field"] == "instance_id"
    executor.refresh_from_db()
    assert (executor.name, executor.base_url) == ("data-processor-1", "http://10.0.0.1:9090")


def test_register_with_tasks_creates_them_and_assigns_the_executor(api):
    request = registration(tasks=[
        {"task_name": "daily_report", "cron": "0 0 2 * * *", "execution_mode": "sequential",
         "load_balance_strategy": "round_robin", "timeout": 300},
        {"task_name": "hourly_sync", "cron": "0 * * * *", "max_retry": 1, "parameters": {"k": "v"}},
    ])
    data = assert_ok(*api.post(REGISTER, request), http_status=201, message="执行器注册成功")
    outcomes = {entry["name"]: entry for entry in data["tasks"]}
    assert {name: entry["outcome"] for name, entry in outcomes.items()} == {
        "daily_report": "created", "hourly_sync": "created",
    }
    report = Task.objects.get(name="daily_report")
    assert outcomes["daily_report"]["task_id"] == report.pk
    assert (report.cron_expression, report.execution_mode, report.timeout_seconds, report.status) == (
        "0 0 2 * * *", "sequential", 300, "active",
    )
    sync = Task.objects.get(name="hourly_sync")
    assert (sync.max_retry, sync.parameters, sync.execution_mode) == (1, {"k": "v"}, "parallel")
    assert set(TaskExecutor.objects.filter(executor_id=data["id"]).values_list("task__name", flat=True)) == {
        "daily_report", "hourly_sync",
    }


def test_reregister_with_tasks_updates_existing_tasks_without_duplicating_assignments(api, make_executor, make_task):
    executor = make_executor(name="data-processor-2", instance_id="dp-002")
    task = make_task(name="daily_report", cron_expression="0 0 2 * * *", max_retry=3, declared_by=executor)
    TaskExecutor.objects.create(task=task, executor=executor)
    data = assert_ok(*api.post(REGISTER, registration(tasks=[{"task_name": "daily_report", "cron": "0 0 3 * * *"}])),
                     message="执行器注册成功")
    assert data["tasks"] == [{"task_id": task.pk, "name": "daily_report", "outcome": "updated", "reason": ""}]
    task.refresh_from_db()
    assert (task.cron_expression, task.max_retry) == ("0 0 3 * * *", 3)
    assert TaskExecutor.objects.filter(task=task, executor=executor).count() == 1


def test_register_declaring_a_deleted_task_leaves_it_deleted(api, make_task):
    task = make_task(name="retired", status="deleted")
    data = assert_ok(*api.post(REGISTER, registration(tasks=[{"task_name": "retired", "cron": "0 0 3 * * *"}])),
                     http_status=201, message="执行器注册成功")
    assert data["tasks"] == [{"task_id": task.pk, "name": "retired", "outcome": "skipped_deleted",
                              "reason": "the task is deleted"}]
    assert Task.objects.get(pk=task.pk).status == "deleted"


def test_registration_whose_second_task_has_a_bad_cron_creates_nothing_at_all(api):
    request = registration(tasks=[{"task_name": "first", "cron": "0 0 2 * * *"},
                                  {"task_name": "second", "cron": "not a cron"}])
    error = assert_error(*api.post(REGISTER, request), 400, 10002)
    assert error["details"]["field"] == "tasks.1.cron"
    assert not Executor.objects.filter(instance_id="dp-002").exists()
    assert not Task.objects.filter(name__in=["first", "second"]).exists()


def test_registration_that_fails_while_declaring_tasks_rolls_back_everything(api, monkeypatch):
    real_declare = executor_services._declare_task
    calls = []

    def declare_then_fail(executor, spec, now):
        calls.append(spec["task_name"])
        if len(calls) == 2:
            raise DomainError(ErrorCode.TASK_NAME_EXISTS, "simulated failure on the second task")
        return real_declare(executor, spec, now)

    monkeypatch.setattr(executor_services, "_declare_task", declare_then_fail)
    request = registration(tasks=[{"task_name": "first", "cron": "0 0 2 * * *"},
                                  {"task_name": "second", "cron": "0 0 3 * * *"}])
    assert_error(*api.post(REGISTER, request), 409, 10001)
    assert calls == ["first", "second"]
    assert not Executor.objects.filter(instance_id="dp-002").exists()
    assert not Task.objects.filter(name="first").exists()
    assert not TaskExecutor.objects.filter(task__name="first").exists()


def test_registration_listing_the_same_task_twice_answers_400(api):
    request = registration(tasks=[{"task_name": "dup", "cron": "0 0 2 * * *"},
                                  {"task_name": "dup", "cron": "0 0 3 * * *"}])
    assert_error(*api.post(REGISTER, request), 400)
    assert not Executor.objects.filter(instance_id="dp-002").exists()


@pytest.mark.parametrize("missing", ["name", "instance_id", "base_url"])
def test_register_without_a_required_field_answers_400(api, missing):
    request = registration()
    del request[missing]
    error = assert_error(*api.post(REGISTER, request), 400)
    assert error["details"]["field"] == missing


@pytest.mark.parametrize("base_url", ["ftp://192.168.1.1", "192.168.1.1:9090", "http://", "http://host name:1",
                                      "http://host:99999", "javascript:alert(1)"])
def test_register_with_an_unusable_base_url_answers_400(api, base_url):
    error = assert_error(*api.post(REGISTER, registration(base_url=base_url)), 400)
    assert error["details"]["field"] == "base_url"


def test_register_declaring_batched_dispatch_stores_it_and_registering_again_without_it_turns_it_off(
        api, make_executor):
    data = assert_ok(*api.post(REGISTER, registration(execute_batch_limit=250)), http_status=201,
                     message="执行器注册成功")
    assert data["execute_batch_limit"] == 250 and Executor.objects.get(pk=data["id"]).takes_batches
    make_executor(instance_id="other")
    again = assert_ok(*api.post(REGISTER, registration()), message="执行器注册成功")  # e.g. an older SDK
    assert again["execute_batch_limit"] == 0 and not Executor.objects.get(pk=data["id"]).takes_batches


@pytest.mark.parametrize("limit", [-1, 1001, "many", True, 2.5])
def test_register_with_an_unusable_batch_limit_answers_400_and_registers_nothing(api, limit):
    error = assert_error(*api.post(REGISTER, registration(execute_batch_limit=limit)), 400)
    assert error["details"]["field"] == "execute_batch_limit"
    assert not Executor.objects.exists()


# --- update ---------------------------------------------------------------------------------------------------


def test_update_executor_answers_执行器信息更新成功_with_the_spec_example(api, make_executor):
    executor = make_executor(name="data-processor-1", instance_id="dp-001", base_url="http://192.168.1.100:9090")
    request = {
        "name": "data-processor-1-updated", "base_url": "http://192.168.1.100:9091",
        "health_check_url": "http://192.168.1.100:9091/health",
        "metadata": {"region": "us-west-1", "capacity": 12, "version": "1.0.2"},
    }
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}", request), message="执行器信息更新成功")
    assert_executor_shape(data)
    for key, value in request.items():
        assert data[key] == value, key
    assert data["instance_id"] == "dp-001"
    executor.refresh_from_db()
    assert (executor.name, executor.base_url) == ("data-processor-1-updated", "http://192.168.1.100:9091")


def test_update_base_url_moves_a_derived_health_url_along(api, make_executor):
    executor = make_executor(base_url="http://10.0.0.1:9090")
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}", {"base_url": "http://10.0.0.9:9090"}),
                     message="执行器信息更新成功")
    assert data["health_check_url"] == "http://10.0.0.9:9090/health"


def test_update_base_url_keeps_an_explicit_health_url(api, make_executor):
    executor = make_executor(base_url="http://10.0.0.1:9090", health_check_url="http://10.0.0.1:8000/ping")
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}", {"base_url": "http://10.0.0.9:9090"}),
                     message="执行器信息更新成功")
    assert data["health_check_url"] == "http://10.0.0.1:8000/ping"


def test_update_with_a_blank_health_url_restores_the_default(api, make_executor):
    executor = make_executor(base_url="http://10.0.0.1:9090", health_check_url="http://10.0.0.1:8000/ping")
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}", {"health_check_url": ""}), message="执行器信息更新成功")
    assert data["health_check_url"] == "http://10.0.0.1:9090/health"


def test_register_with_a_blank_health_url_uses_the_default(api):
    data = assert_ok(*api.post(REGISTER, registration(health_check_url="")), http_status=201, message="执行器注册成功")
    assert data["health_check_url"] == "http://192.168.1.101:9090/health"


def test_update_cannot_change_the_instance_id(api, make_executor):
    executor = make_executor(instance_id="dp-001")
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}", {"instance_id": "dp-999", "name": "n"}),
                     message="执行器信息更新成功")
    assert data["instance_id"] == "dp-001"
    assert Executor.objects.get(pk=executor.pk).instance_id == "dp-001"


def test_update_unknown_executor_answers_404_20001(api):
    assert_error(*api.put(f"{EXECUTORS}/ghost", {"name": "x"}), 404, 20001)


# --- status ---------------------------------------------------------------------------------------------------


def test_set_status_answers_执行器状态更新成功_with_previous_current_and_reason(api, make_executor):
    executor = make_executor()
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}/status", {"status": "maintenance", "reason": "系统维护升级"}),
                     message="执行器状态更新成功")
    assert set(data) == {"executor_id", "previous_status", "current_status", "reason", "updated_at"}
    assert (data["executor_id"], data["previous_status"], data["current_status"], data["reason"]) == (
        executor.pk, "online", "maintenance", "系统维护升级",
    )
    assert parse_iso(data["updated_at"]) <= timezone.now()
    executor.refresh_from_db()
    assert (executor.status, executor.status_reason) == ("maintenance", "系统维护升级")


def test_set_status_without_reason_records_an_empty_reason(api, make_executor):
    executor = make_executor(status="maintenance", status_reason="old")
    data = assert_ok(*api.put(f"{EXECUTORS}/{executor.pk}/status", {"status": "online"}), message="执行器状态更新成功")
    assert (data["previous_status"], data["current_status"], data["reason"]) == ("maintenance", "online", "")


@pytest.mark.parametrize("body", [
    {}, {"status": "retired"}, {"status": None}, {"status": "online", "reason": "x" * 501},
])
def test_set_status_with_invalid_body_answers_400_and_keeps_the_status(api, make_executor, body):
    executor = make_executor()
    assert_error(*api.put(f"{EXECUTORS}/{executor.pk}/status", body), 400)
    assert Executor.objects.get(pk=executor.pk).status == "online"


def test_set_status_of_unknown_executor_answers_404_20001(api):
    assert_error(*api.put(f"{EXECUTORS}/ghost/status", {"status": "offline"}), 404, 20001)


# --- delete ---------------------------------------------------------------------------------------------------


def test_delete_executor_answers_执行器删除成功_removes_assignments_and_unlinks_executions(
    api, make_executor, make_task, make_execution,
):
    executor = make_executor()
    task = make_task()
    TaskExecutor.objects.create(task=task, executor=executor)
    finished = make_execution(task=task, executor=executor, status="success")
    running = make_execution(task=task, executor=executor, status="running", start_time=timezone.now())
    status, body = api.delete(f"{EXECUTORS}/{executor.pk}")
    assert (status, body) == (200, {"code": 200, "message": "执行器删除成功"})
    assert not Executor.objects.filter(pk=executor.pk).exists()
    assert not TaskExecutor.objects.filter(task=task).exists()
    assert Task.objects.filter(pk=task.pk).exists()
    for execution in (finished, running):
        execution.refresh_from_db()
        assert execution.executor_id is None
    assert (finished.status, running.status) == ("success", "running")
    assert assert_ok(*api.get(f"/api/v1/executions/{finished.pk}"))["executor"] is None


def test_deleted_executor_is_gone_and_a_second_delete_answers_404_20001(api, make_executor):
    executor = make_executor()
    assert_ok(*api.delete(f"{EXECUTORS}/{executor.pk}"), message="执行器删除成功")
    assert_error(*api.get(f"{EXECUTORS}/{executor.pk}"), 404, 20001)
    assert_error(*api.delete(f"{EXECUTORS}/{executor.pk}"), 404, 20001)
    assert not TaskExecution.objects.filter(executor_id=executor.pk).exists()
