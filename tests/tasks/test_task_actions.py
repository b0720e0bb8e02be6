"""Spec 000 §5.5-5.8: delete (soft), trigger, pause and resume, and which task states allow them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from tasks.models import Task
from tests.helpers import assert_error, assert_ok, is_iso_z, parse_iso

TASKS = "/api/v1/tasks"


# --- trigger --------------------------------------------------------------------------------------------------


def test_trigger_answers_200_任务触发成功_with_a_pending_execution(api, make_task):
    task = make_task()
    before = timezone.now()
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/trigger", {"parameters": {"force_sync": True}}),
                     message="任务触发成功")
    assert {"id", "task_id", "scheduled_time", "status", "created_at"} <= set(data)
    assert isinstance(data["id"], str)
    assert data["task_id"] == task.pk
    assert data["status"] == "pending"
    assert is_iso_z(data["created_at"])
    assert before <= parse_iso(data["scheduled_time"]) <= timezone.now()
    execution = TaskExecution.objects.get(pk=data["id"])
    assert (execution.task_id, execution.status, execution.trigger_type) == (task.pk, "pending", "manual")


def test_trigger_merges_runtime_parameters_over_the_task_defaults(api, make_task):
    task = make_task(parameters={"source": "database_a", "target": "database_b"})
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/trigger",
                                {"parameters": {"source": "database_c", "force_sync": True}}),
                     message="任务触发成功")
    expected = {"source": "database_c", "target": "database_b", "force_sync": True}
    assert data["parameters"] == expected
    assert TaskExecution.objects.get(pk=data["id"]).parameters == expected
    task.refresh_from_db()
    assert task.parameters == {"source": "database_a", "target": "database_b"}


@pytest.mark.parametrize("body", [None, {}, {"parameters": None}], ids=["no-body", "empty-object", "null-parameters"])
def test_trigger_without_runtime_parameters_uses_the_task_defaults(api, make_task, body):
    task = make_task(parameters={"k": "v"})
    response = api.post(f"{TASKS}/{task.pk}/trigger") if body is None else api.post(f"{TASKS}/{task.pk}/trigger", body)
    assert assert_ok(*response, message="任务触发成功")["parameters"] == {"k": "v"}


def test_two_triggers_create_two_distinct_executions(api, make_task):
    task = make_task()
    first = assert_ok(*api.post(f"{TASKS}/{task.pk}/trigger"), message="任务触发成功")
    second = assert_ok(*api.post(f"{TASKS}/{task.pk}/trigger"), message="任务触发成功")
    assert first["id"] != second["id"]
    assert TaskExecution.objects.filter(task=task, trigger_type="manual").count() == 2


def test_trigger_of_a_paused_task_is_allowed(api, make_task):
    task = make_task(status="paused")
    assert assert_ok(*api.post(f"{TASKS}/{task.pk}/trigger"), message="任务触发成功")["status"] == "pending"


def test_trigger_of_a_deleted_task_answers_409_10004_and_creates_nothing(api, make_task):
    task = make_task(status="deleted")
    assert_error(*api.post(f"{TASKS}/{task.pk}/trigger"), 409, 10004)
    assert not TaskExecution.objects.filter(task=task).exists()


def test_trigger_of_an_unknown_task_answers_404_10003(api):
    assert_error(*api.post(f"{TASKS}/missing/trigger"), 404, 10003)


@pytest.mark.parametrize("parameters", [[1, 2], "text", 5])
def test_trigger_with_parameters_that_are_not_an_object_answers_400(api, make_task, parameters):
    task = make_task()
    error = assert_error(*api.post(f"{TASKS}/{task.pk}/trigger", {"parameters": parameters}), 400)
    assert error["details"]["field"] == "parameters"
    assert not TaskExecution.objects.filter(task=task).exists()


# --- pause / resume -------------------------------------------------------------------------------------------


def test_pause_active_task_answers_任务暂停成功_with_the_status_change(api, make_task):
    task = make_task()
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/pause"), message="任务暂停成功")
    assert data == {"task_id": task.pk, "previous_status": "active", "current_status": "paused"}
    task.refresh_from_db()
    assert task.status == "paused"
    assert task.next_run_time is None


def test_pause_does_not_touch_running_or_pending_executions(api, make_task, make_execution):
    task = make_task()
    running = make_execution(task=task, status="running", start_time=timezone.now())
    pending = make_execution(task=task, status="pending")
    assert_ok(*api.post(f"{TASKS}/{task.pk}/pause"), message="任务暂停成功")
    running.refresh_from_db()
    pending.refresh_from_db()
    assert (running.status, pending.status) == ("running", "pending")


def test_pause_of_a_paused_task_answers_409_10004(api, make_task):
    task = make_task(status="paused")
    error = assert_error(*api.post(f"{TASKS}/{task.pk}/pause"), 409, 10004)
    assert error["details"]["status"] == "paused"


def test_resume_paused_task_answers_任务恢复成功_and_schedules_it_again(api, make_task):
    task = make_task(status="paused", cron_expression="*/10 * * * * *")
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/resume"), message="任务恢复成功")
    assert data == {"task_id": task.pk, "previous_status": "paused", "current_status": "active"}
    task.refresh_from_db()
    assert task.status == "active"
    assert task.next_run_time is not None and task.next_run_time > timezone.now() - timezone.timedelta(seconds=1)


def test_resume_of_an_active_task_answers_409_10004(api, make_task):
    task = make_task(status="active")
    assert_error(*api.post(f"{TASKS}/{task.pk}/resume"), 409, 10004)


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_of_a_deleted_task_answer_409_10004(api, make_task, action):
    task = make_task(status="deleted")
    assert_error(*api.post(f"{TASKS}/{task.pk}/{action}"), 409, 10004)
    task.refresh_from_db()
    assert task.status == "deleted"


@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_actions_on_an_unknown_task_answer_404_10003(api, action):
    assert_error(*api.post(f"{TASKS}/unknown/{action}"), 404, 10003, path=f"{TASKS}/unknown/{action}")


def test_pause_then_resume_round_trip(api, make_task):
    task = make_task()
    assert_ok(*api.post(f"{TASKS}/{task.pk}/pause"), message="任务暂停成功")
    assert_ok(*api.post(f"{TASKS}/{task.pk}/resume"), message="任务恢复成功")
    assert assert_ok(*api.get(f"{TASKS}/{task.pk}"))["status"] == "active"


# --- delete ---------------------------------------------------------------------------------------------------


def test_delete_task_answers_任务删除成功_without_data_and_keeps_the_row_as_deleted(api, make_task):
    task = make_task()
    status, body = api.delete(f"{TASKS}/{task.pk}")
    assert status == 200
    assert body == {"code": 200, "message": "任务删除成功"}
    task.refresh_from_db()
    assert task.status == "deleted"
    assert task.next_run_time is None
    assert assert_ok(*api.get(f"{TASKS}/{task.pk}"))["status"] == "deleted"


def test_delete_paused_task_is_allowed(api, make_task):
    task = make_task(status="paused")
    assert_ok(*api.delete(f"{TASKS}/{task.pk}"), message="任务删除成功")
    assert Task.objects.get(pk=task.pk).status == "deleted"


def test_delete_task_cancels_its_pending_executions_but_not_running_ones(api, make_task, make_execution):
    task = make_task()
    pending = make_execution(task=task, status="pending")
    running = make_execution(task=task, status="running", start_time=timezone.now())
    other = make_execution(status="pending")
    assert_ok(*api.delete(f"{TASKS}/{task.pk}"), message="任务删除成功")
    for execution in (pending, running, other):
        execution.refresh_from_db()
    assert pending.status == "cancelled" and pending.end_time is not None
    assert running.status == "running"
    assert other.status == "pending"


def test_deleted_task_leaves_the_default_list(api, make_task):
    task = make_task()
    assert_ok(*api.delete(f"{TASKS}/{task.pk}"), message="任务删除成功")
    assert task.pk not in {t["id"] for t in assert_ok(*api.get(TASKS))}


def test_delete_of_a_deleted_task_answers_409_10004(api, make_task):
    task = make_task(status="deleted")
    assert_error(*api.delete(f"{TASKS}/{task.pk}"), 409, 10004)


def test_delete_of_an_unknown_task_answers_404_10003(api):
    assert_error(*api.delete(f"{TASKS}/unknown"), 404, 10003)
