"""Spec 000 §5.10: which executors run a task, with what priority and weight."""

from __future__ import annotations

import pytest

from tasks.models import TaskExecutor
from tests.helpers import assert_assignment_shape, assert_error, assert_ok, same_instant

TASKS = "/api/v1/tasks"


def test_list_task_executors_answers_assignments_with_executor_details(api, make_task, make_executor):
    task = make_task()
    executor = make_executor(name="data-processor-1", instance_id="dp-001", base_url="http://192.168.1.100:9090")
    assignment = TaskExecutor.objects.create(task=task, executor=executor, priority=1, weight=2)
    [listed] = assert_ok(*api.get(f"{TASKS}/{task.pk}/executors"))
    assert_assignment_shape(listed)
    assert listed["id"] == assignment.pk
    assert (listed["task_id"], listed["executor_id"], listed["priority"], listed["weight"]) == (
        task.pk, executor.pk, 1, 2,
    )
    assert listed["executor"] == {
        "id": executor.pk, "name": "data-processor-1", "instance_id": "dp-001", "status": "online",
        "is_healthy": True, "base_url": "http://192.168.1.100:9090",
    }


def test_list_task_executors_orders_by_priority_lowest_first(api, make_task, make_executor):
    task = make_task()
    low, high = make_executor(), make_executor()
    TaskExecutor.objects.create(task=task, executor=low, priority=5)
    TaskExecutor.objects.create(task=task, executor=high, priority=-1)
    assert [a["executor_id"] for a in assert_ok(*api.get(f"{TASKS}/{task.pk}/executors"))] == [high.pk, low.pk]


def test_list_task_executors_of_a_task_without_any_is_empty(api, make_task):
    assert assert_ok(*api.get(f"{TASKS}/{make_task().pk}/executors")) == []


def test_list_task_executors_of_unknown_task_answers_404_10003(api):
    assert_error(*api.get(f"{TASKS}/nope/executors"), 404, 10003)


def test_assign_executor_answers_201_执行器分配成功_with_default_priority_0_and_weight_1(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/executors", {"executor_id": executor.pk}),
                     http_status=201, message="执行器分配成功")
    assert_assignment_shape(data)
    assert (data["task_id"], data["executor_id"], data["priority"], data["weight"]) == (task.pk, executor.pk, 0, 1)
    stored = TaskExecutor.objects.get(pk=data["id"])
    assert (stored.task_id, stored.executor_id, stored.priority, stored.weight) == (task.pk, executor.pk, 0, 1)


def test_assign_executor_with_priority_and_weight(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    data = assert_ok(*api.post(f"{TASKS}/{task.pk}/executors",
                                {"executor_id": executor.pk, "priority": 2, "weight": 3}),
                     http_status=201, message="执行器分配成功")
    assert (data["priority"], data["weight"]) == (2, 3)


def test_assign_the_same_executor_twice_answers_409_and_keeps_one_row(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    assert_error(*api.post(f"{TASKS}/{task.pk}/executors", {"executor_id": executor.pk}), 409, 409)
    assert TaskExecutor.objects.filter(task=task, executor=executor).count() == 1


def test_assign_unknown_executor_answers_404_20001(api, make_task):
    task = make_task()
    assert_error(*api.post(f"{TASKS}/{task.pk}/executors", {"executor_id": "ghost"}), 404, 20001)
    assert not TaskExecutor.objects.filter(task=task).exists()


def test_assign_to_unknown_task_answers_404_10003(api, make_executor):
    assert_error(*api.post(f"{TASKS}/ghost/executors", {"executor_id": make_executor().pk}), 404, 10003)


def test_assign_to_a_deleted_task_answers_409_10004(api, make_task, make_executor):
    task = make_task(status="deleted")
    assert_error(*api.post(f"{TASKS}/{task.pk}/executors", {"executor_id": make_executor().pk}), 409, 10004)


@pytest.mark.parametrize("body", [{}, {"executor_id": ""}, {"executor_id": "x", "weight": 0},
                                  {"executor_id": "x", "weight": 1001}, {"executor_id": "x", "priority": "high"}])
def test_assign_with_invalid_body_answers_400(api, make_task, body):
    task = make_task()
    assert_error(*api.post(f"{TASKS}/{task.pk}/executors", body), 400)


def test_update_assignment_answers_执行器分配更新成功_and_keeps_created_at(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    assignment = TaskExecutor.objects.create(task=task, executor=executor, priority=2, weight=1)
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}/executors/{executor.pk}", {"priority": 1, "weight": 3}),
                     message="执行器分配更新成功")
    assert_assignment_shape(data)
    assert (data["id"], data["priority"], data["weight"]) == (assignment.pk, 1, 3)
    assert same_instant(data["created_at"], assignment.created_at)
    assignment.refresh_from_db()
    assert (assignment.priority, assignment.weight) == (1, 3)


def test_update_assignment_changes_only_given_fields(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    TaskExecutor.objects.create(task=task, executor=executor, priority=4, weight=6)
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}/executors/{executor.pk}", {"weight": 2}),
                     message="执行器分配更新成功")
    assert (data["priority"], data["weight"]) == (4, 2)


def test_update_assignment_of_an_unassigned_executor_answers_404_20001(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    assert_error(*api.put(f"{TASKS}/{task.pk}/executors/{executor.pk}", {"weight": 2}), 404, 20001)


def test_update_assignment_with_invalid_weight_answers_400_and_keeps_the_row(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    assignment = TaskExecutor.objects.create(task=task, executor=executor, weight=5)
    assert_error(*api.put(f"{TASKS}/{task.pk}/executors/{executor.pk}", {"weight": 0}), 400)
    assignment.refresh_from_db()
    assert assignment.weight == 5


def test_unassign_executor_answers_执行器分配取消成功_and_removes_only_that_row(api, make_task, make_executor):
    task, executor, other = make_task(), make_executor(), make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    TaskExecutor.objects.create(task=task, executor=other)
    status, body = api.delete(f"{TASKS}/{task.pk}/executors/{executor.pk}")
    assert (status, body) == (200, {"code": 200, "message": "执行器分配取消成功"})
    assert list(TaskExecutor.objects.filter(task=task).values_list("executor_id", flat=True)) == [other.pk]


def test_unassign_twice_answers_404_20001_the_second_time(api, make_task, make_executor):
    task, executor = make_task(), make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    assert_ok(*api.delete(f"{TASKS}/{task.pk}/executors/{executor.pk}"), message="执行器分配取消成功")
    assert_error(*api.delete(f"{TASKS}/{task.pk}/executors/{executor.pk}"), 404, 20001)


def test_unassign_on_unknown_task_answers_404_10003(api, make_executor):
    assert_error(*api.delete(f"{TASKS}/ghost/executors/{make_executor().pk}"), 404, 10003)
