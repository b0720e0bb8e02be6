"""Spec 000 §5.1-5.5: list, create, read and update tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import Task, TaskExecutor
from tests.helpers import (
    PAGE_KEYS,
    assert_error,
    assert_ok,
    assert_task_shape,
    is_int,
    parse_iso,
    same_instant,
)

TASKS = "/api/v1/tasks"


def new_task(**fields):
    return {"name": "data_sync_task", "cron_expression": "0 */5 * * * *", **fields}


# --- create ---------------------------------------------------------------------------------------------------


def test_create_task_answers_201_with_spec_message_and_spec_defaults(api):
    status, body = api.post(TASKS, new_task())
    data = assert_ok(status, body, http_status=201, message="任务创建成功")
    assert_task_shape(data)
    assert data["name"] == "data_sync_task"
    assert data["cron_expression"] == "0 */5 * * * *"
    assert data["parameters"] == {}
    assert data["execution_mode"] == "parallel"
    assert data["load_balance_strategy"] == "round_robin"
    assert data["max_retry"] == 3
    assert data["timeout_seconds"] == 300
    assert data["status"] == "active"
    task = Task.objects.get(pk=data["id"])
    assert (task.execution_mode, task.load_balance_strategy, task.max_retry, task.timeout_seconds) == (
        "parallel", "round_robin", 3, 300,
    )
    assert same_instant(data["created_at"], task.created_at)


def test_create_task_echoes_and_stores_every_field_of_the_spec_example(api):
    request = new_task(
        parameters={"source": "database_a", "target": "database_b", "batch_size": 1000},
        execution_mode="sequential", load_balance_strategy="weighted_round_robin", max_retry=5, timeout_seconds=600,
    )
    data = assert_ok(*api.post(TASKS, request), http_status=201, message="任务创建成功")
    for key, value in request.items():
        assert data[key] == value, key
    task = Task.objects.get(pk=data["id"])
    assert task.parameters == request["parameters"]
    assert (task.execution_mode, task.load_balance_strategy, task.max_retry, task.timeout_seconds) == (
        "sequential", "weighted_round_robin", 5, 600,
    )


def test_create_task_always_starts_active_and_schedules_the_next_fire_in_the_future(api):
    before = timezone.now()
    data = assert_ok(*api.post(TASKS, new_task(cron_expression="*/10 * * * * *")), http_status=201,
                     message="任务创建成功")
    assert data["status"] == "active"
    next_run = parse_iso(data["next_run_time"])
    assert before < next_run <= before + timedelta(seconds=11)
    assert next_run.second % 10 == 0


@pytest.mark.parametrize("cron", ["0 */5 * * * *", "0 30 9-17 * * 1-5", "*/10 * * * * *", "*/5 * * * *", "0 2 * * *"])
def test_create_task_accepts_six_field_and_five_field_cron(api, cron):
    data = assert_ok(*api.post(TASKS, new_task(cron_expression=cron)), http_status=201, message="任务创建成功")
    assert data["cron_expression"] == cron


def test_create_task_with_duplicate_name_answers_409_10001(api, make_task):
    existing = make_task(name="data_sync_task")
    status, body = api.post(TASKS, new_task())
    error = assert_error(status, body, 409, 10001, path=TASKS)
    assert error["details"]["field"] == "name"
    assert Task.objects.filter(name="data_sync_task").count() == 1
    assert Task.objects.get(name="data_sync_task").pk == existing.pk


def test_create_task_with_the_name_of_a_deleted_task_answers_409_10001(api, make_task):
    make_task(name="data_sync_task", status="deleted")
    assert_error(*api.post(TASKS, new_task()), 409, 10001)


@pytest.mark.parametrize("cron", ["bad", "61 * * * * *", "* * * * * * *", "0 0 30 2 *", "* * *", "",
                                  "0 22-2 * * *", "0 0 0 * * FRI-SUN"])  # wrapping ranges, refused as cronie does
def test_create_task_with_invalid_cron_answers_400_10002_and_creates_nothing(api, cron):
    status, body = api.post(TASKS, new_task(cron_expression=cron))
    if cron == "":
        # Blank is "required", not a parse failure.
        assert_error(status, body, 400, 400)
    else:
        error = assert_error(status, body, 400, 10002)
        assert error["details"]["field"] == "cron_expression"
    assert not Task.objects.filter(name="data_sync_task").exists()


@pytest.mark.parametrize("missing", ["name", "cron_expression"])
def test_create_task_without_a_required_field_answers_400_naming_the_field(api, missing):
    request = new_task()
    del request[missing]
    error = assert_error(*api.post(TASKS, request), 400, 400, path=TASKS)
    assert error["details"]["field"] == missing
    assert error["details"]["constraint"] == "required"
    assert missing in error["error"]


def test_create_task_refuses_a_status_field_because_new_tasks_are_always_active(api):
    error = assert_error(*api.post(TASKS, new_task(status="paused")), 400)
    assert error["details"]["field"] == "status"
    assert not Task.objects.filter(name="data_sync_task").exists()


@pytest.mark.parametrize(("field", "value"), [("max_retry", -1), ("max_retry", 101), ("timeout_seconds", 0),
                                              ("timeout_seconds", 7 * 24 * 3600 + 1)])
def test_create_task_with_out_of_range_numbers_answers_400(api, field, value):
    error = assert_error(*api.post(TASKS, new_task(**{field: value})), 400)
    assert error["details"]["field"] == field


# --- list -----------------------------------------------------------------------------------------------------


def test_list_tasks_answers_spec_envelope_with_paging_beside_data(api, make_task):
    for _ in range(3):
        make_task()
    status, body = api.get(TASKS)
    data = assert_ok(status, body)
    assert isinstance(data, list) and len(data) == 3
    assert PAGE_KEYS <= set(body)
    assert (body["total"], body["page"], body["page_size"], body["total_pages"]) == (3, 1, 20, 1)
    for task in data:
        assert_task_shape(task)
        assert task["task_executors"] == []


def test_list_tasks_pages_through_results_without_overlap(api, make_task):
    ids = {make_task().pk for _ in range(25)}
    seen = []
    for page, expected in ((1, 10), (2, 10), (3, 5)):
        status, body = api.get(TASKS, {"page": page, "page_size": 10})
        data = assert_ok(status, body)
        assert len(data) == expected
        assert (body["total"], body["page"], body["page_size"], body["total_pages"]) == (25, page, 10, 3)
        seen += [task["id"] for task in data]
    assert len(seen) == 25 and set(seen) == ids


def test_list_tasks_page_beyond_the_last_is_an_empty_page_not_an_error(api, make_task):
    make_task()
    status, body = api.get(TASKS, {"page": 5})
    assert assert_ok(status, body) == []
    assert (body["total"], body["page"], body["total_pages"]) == (1, 5, 1)


def test_list_tasks_of_an_empty_table_has_zero_pages(api):
    status, body = api.get(TASKS)
    assert assert_ok(status, body) == []
    assert (body["total"], body["total_pages"]) == (0, 0)


def test_list_tasks_newest_first(api, make_task):
    old = make_task()
    Task.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    new = make_task()
    data = assert_ok(*api.get(TASKS))
    assert [task["id"] for task in data] == [new.pk, old.pk]


def test_list_tasks_created_in_the_same_instant_come_in_one_order_on_every_page(api, make_task):
    # Newest first, then by id in the same direction: the order an index on created_at (with the row's id)
    # gives without sorting the table.
    ids = [make_task().pk for _ in range(4)]
    Task.objects.filter(pk__in=ids).update(created_at=timezone.now())
    pages = [assert_ok(*api.get(TASKS, {"page": page, "page_size": 2})) for page in (1, 2)]
    assert [task["id"] for page in pages for task in page] == sorted(ids, reverse=True)


def test_list_tasks_counts_exactly_only_up_to_a_bound_past_the_page(api, make_task, monkeypatch):
    # A million tasks: an exact COUNT(*) cost more than the page. Beyond the bound, total is a lower bound.
    monkeypatch.setattr("scheduler_project.pagination.COUNT_AHEAD", 2)
    for _ in range(5):
        make_task()
    status, body = api.get(TASKS, {"page_size": 1})
    assert len(assert_ok(status, body)) == 1
    assert (body["total"], body["total_pages"], body["total_is_exact"]) == (2, 2, False)
    status, body = api.get(TASKS, {"page_size": 1, "page": 4})  # the bound moves with the page
    assert len(assert_ok(status, body)) == 1
    assert (body["total"], body["total_is_exact"]) == (5, True)


def test_list_tasks_hides_deleted_tasks_unless_asked_for_them(api, make_task):
    active = make_task(status="active")
    paused = make_task(status="paused")
    deleted = make_task(status="deleted")
    assert {t["id"] for t in assert_ok(*api.get(TASKS))} == {active.pk, paused.pk}
    assert [t["id"] for t in assert_ok(*api.get(TASKS, {"status": "deleted"}))] == [deleted.pk]


@pytest.mark.parametrize("status_filter", ["active", "paused"])
def test_list_tasks_filters_by_status(api, make_task, status_filter):
    tasks = {status: make_task(status=status) for status in ("active", "paused", "deleted")}
    status, body = api.get(TASKS, {"status": status_filter})
    assert [t["id"] for t in assert_ok(status, body)] == [tasks[status_filter].pk]
    assert body["total"] == 1


def test_list_tasks_name_filter_is_a_case_insensitive_substring_match(api, make_task):
    match_1 = make_task(name="Data_Sync_A")
    match_2 = make_task(name="nightly-data_sync")
    make_task(name="report")
    data = assert_ok(*api.get(TASKS, {"name": "DATA_sync"}))
    assert {t["id"] for t in data} == {match_1.pk, match_2.pk}


def test_list_tasks_carries_assignments_with_executor_briefs(api, make_task, make_executor):
    task = make_task()
    executor = make_executor()
    TaskExecutor.objects.create(task=task, executor=executor, priority=1, weight=2)
    [listed] = assert_ok(*api.get(TASKS))
    [assignment] = listed["task_executors"]
    assert assignment["executor_id"] == executor.pk
    assert (assignment["priority"], assignment["weight"]) == (1, 2)
    assert assignment["executor"]["id"] == executor.pk


# --- read -----------------------------------------------------------------------------------------------------


def test_get_task_answers_detail_with_task_executors_as_in_spec(api, make_task, make_executor):
    task = make_task(parameters={"source": "database_a"}, execution_mode="sequential")
    executor = make_executor(name="data-processor-1")
    assignment = TaskExecutor.objects.create(task=task, executor=executor, priority=1, weight=2)
    data = assert_ok(*api.get(f"{TASKS}/{task.pk}"))
    assert_task_shape(data)
    assert data["id"] == task.pk
    assert data["parameters"] == {"source": "database_a"}
    assert data["execution_mode"] == "sequential"
    [listed] = data["task_executors"]
    assert {"id", "executor_id", "priority", "weight", "executor"} <= set(listed)
    assert listed["id"] == assignment.pk
    assert listed["executor"] == {"id": executor.pk, "name": "data-processor-1", "status": "online",
                                  "is_healthy": True}


def test_get_unknown_task_answers_404_10003(api):
    assert_error(*api.get(f"{TASKS}/no-such-task"), 404, 10003, path=f"{TASKS}/no-such-task")


def test_get_deleted_task_is_still_readable(api, make_task):
    task = make_task(status="deleted")
    assert assert_ok(*api.get(f"{TASKS}/{task.pk}"))["status"] == "deleted"


# --- update ---------------------------------------------------------------------------------------------------


def test_update_task_applies_the_spec_example_and_answers_任务更新成功(api, make_task):
    task = make_task(name="data_sync_task")
    request = {
        "name": "updated_data_sync_task", "cron_expression": "0 */10 * * * *",
        "parameters": {"source": "database_a", "target": "database_b", "batch_size": 2000},
        "execution_mode": "parallel", "load_balance_strategy": "weighted_round_robin", "max_retry": 5,
        "timeout_seconds": 900, "status": "paused",
    }
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", request), message="任务更新成功")
    assert_task_shape(data)
    for key, value in request.items():
        assert data[key] == value, key
    task.refresh_from_db()
    assert (task.name, task.status, task.max_retry, task.timeout_seconds) == (
        "updated_data_sync_task", "paused", 5, 900,
    )
    assert task.next_run_time is None


def test_update_task_changes_only_the_fields_given(api, make_task):
    task = make_task(parameters={"a": 1}, max_retry=7, execution_mode="skip")
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", {"timeout_seconds": 42}), message="任务更新成功")
    assert (data["timeout_seconds"], data["max_retry"], data["execution_mode"], data["parameters"]) == (
        42, 7, "skip", {"a": 1},
    )
    assert data["name"] == task.name


def test_update_task_advances_updated_at_but_not_created_at(api, make_task):
    task = make_task()
    past = timezone.now() - timedelta(hours=1)
    Task.objects.filter(pk=task.pk).update(created_at=past, updated_at=past)
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", {"max_retry": 1}), message="任务更新成功")
    assert parse_iso(data["updated_at"]) > past + timedelta(minutes=59)
    assert same_instant(data["created_at"], past)


def test_update_task_accepts_back_the_representation_it_served(api, make_task):
    task = make_task()
    served = assert_ok(*api.get(f"{TASKS}/{task.pk}"))
    served["max_retry"] = 9
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", served), message="任务更新成功")
    assert data["max_retry"] == 9


def test_update_task_keeping_its_own_name_is_not_a_conflict(api, make_task):
    task = make_task(name="same")
    assert assert_ok(*api.put(f"{TASKS}/{task.pk}", {"name": "same"}), message="任务更新成功")["name"] == "same"


def test_update_task_to_another_tasks_name_answers_409_10001_and_keeps_the_row(api, make_task):
    make_task(name="taken")
    task = make_task(name="mine")
    assert_error(*api.put(f"{TASKS}/{task.pk}", {"name": "taken", "max_retry": 0}), 409, 10001)
    task.refresh_from_db()
    assert (task.name, task.max_retry) == ("mine", 3)


def test_update_task_with_invalid_cron_answers_400_10002_and_keeps_the_row(api, make_task):
    task = make_task(cron_expression="0 */5 * * * *")
    assert_error(*api.put(f"{TASKS}/{task.pk}", {"cron_expression": "every day"}), 400, 10002)
    task.refresh_from_db()
    assert task.cron_expression == "0 */5 * * * *"


def test_update_task_with_new_cron_reschedules_next_run(api, make_task):
    task = make_task(cron_expression="0 0 0 1 1 *")
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", {"cron_expression": "*/10 * * * * *"}), message="任务更新成功")
    assert parse_iso(data["next_run_time"]) <= timezone.now() + timedelta(seconds=11)


def test_update_task_status_to_active_resumes_a_paused_task(api, make_task):
    task = make_task(status="paused")
    data = assert_ok(*api.put(f"{TASKS}/{task.pk}", {"status": "active"}), message="任务更新成功")
    assert data["status"] == "active"
    assert data["next_run_time"] is not None


def test_update_of_a_deleted_task_answers_409_10004(api, make_task):
    task = make_task(status="deleted")
    assert_error(*api.put(f"{TASKS}/{task.pk}", {"status": "active"}), 409, 10004)
    task.refresh_from_db()
    assert task.status == "deleted"


def test_update_unknown_task_answers_404_10003(api):
    assert_error(*api.put(f"{TASKS}/nope", {"max_retry": 1}), 404, 10003)


def test_update_task_with_unknown_field_answers_400_and_names_it(api, make_task):
    task = make_task()
    error = assert_error(*api.put(f"{TASKS}/{task.pk}", {"cron": "0 * * * * *"}), 400)
    assert error["details"]["field"] == "cron"
    assert error["details"]["constraint"] == "unknown_field"


def test_task_ids_are_strings_and_distinct(api):
    first = assert_ok(*api.post(TASKS, new_task(name="a")), http_status=201, message="任务创建成功")
    second = assert_ok(*api.post(TASKS, new_task(name="b")), http_status=201, message="任务创建成功")
    assert isinstance(first["id"], str) and isinstance(second["id"], str) and first["id"] != second["id"]
    assert is_int(first["max_retry"])
    assert Task.objects.filter(pk__in=[first["id"], second["id"]]).count() == 2
