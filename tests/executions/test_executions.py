"""Spec 000 §7: execution history, statistics, executor callbacks and stops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from tests.helpers import (
    EXECUTION_KEYS,
    PAGE_KEYS,
    assert_error,
    assert_execution_shape,
    assert_ok,
    is_int,
    is_number,
    parse_iso,
    same_instant,
)

EXECUTIONS = "/api/v1/executions"


def iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def history(make_task, make_executor, make_execution):
    """Two tasks, one executor, four runs an hour or so apart."""
    now = timezone.now()
    task_a, task_b = make_task(name="task-a"), make_task(name="task-b")
    executor = make_executor(name="data-processor-1")
    runs = {
        "a_success": make_execution(task=task_a, executor=executor, status="success",
                                    scheduled_time=now - timedelta(hours=1), start_time=now - timedelta(hours=1),
                                    end_time=now - timedelta(minutes=58), duration_ms=120_000,
                                    result={"processed_records": 1000}, logs="done"),
        "a_failed": make_execution(task=task_a, status="failed", scheduled_time=now - timedelta(hours=2)),
        "b_running": make_execution(task=task_b, executor=executor, status="running",
                                    scheduled_time=now - timedelta(hours=3), start_time=now - timedelta(hours=3)),
        "b_pending": make_execution(task=task_b, status="pending", scheduled_time=now - timedelta(minutes=30)),
    }
    return {"now": now, "task_a": task_a, "task_b": task_b, "executor": executor, **runs}


def listed_ids(api, params=None) -> list[str]:
    return [row["id"] for row in assert_ok(*api.get(EXECUTIONS, params))["data"]]


# --- list -----------------------------------------------------------------------------------------------------


def test_list_executions_pages_inside_data_as_in_spec_4_2_3(api, history):
    status, body = api.get(EXECUTIONS)
    data = assert_ok(status, body)
    assert set(body) == {"code", "message", "data"}
    assert set(data) == {"data", *PAGE_KEYS}
    assert data["total_is_exact"] is True
    assert (data["total"], data["page"], data["page_size"], data["total_pages"]) == (4, 1, 20, 1)
    for row in data["data"]:
        assert_execution_shape(row)


def test_list_executions_newest_scheduled_first(api, history):
    assert listed_ids(api) == [history[key].pk for key in ("b_pending", "a_success", "a_failed", "b_running")]


def test_list_executions_carry_task_and_executor_summaries(api, history):
    rows = {row["id"]: row for row in assert_ok(*api.get(EXECUTIONS))["data"]}
    success = rows[history["a_success"].pk]
    assert success["task"] == {"id": history["task_a"].pk, "name": "task-a", "status": "active"}
    assert success["executor"] == {"id": history["executor"].pk, "name": "data-processor-1", "status": "online"}
    assert success["executor_id"] == history["executor"].pk
    assert success["result"] == {"processed_records": 1000}
    assert success["logs"] == "done"
    assert same_instant(success["end_time"], history["a_success"].end_time)
    failed = rows[history["a_failed"].pk]
    assert failed["executor"] is None and failed["executor_id"] is None
    assert failed["start_time"] is None and failed["end_time"] is None and failed["result"] is None


def test_list_executions_filters_by_task_id(api, history):
    assert listed_ids(api, {"task_id": history["task_a"].pk}) == [history["a_success"].pk, history["a_failed"].pk]


def test_list_executions_filters_by_executor_id(api, history):
    assert listed_ids(api, {"executor_id": history["executor"].pk}) == [history["a_success"].pk,
                                                                        history["b_running"].pk]


def test_list_executions_filters_by_one_status(api, history):
    assert listed_ids(api, {"status": "running"}) == [history["b_running"].pk]


@pytest.mark.parametrize("statuses", ["success,failed", "success, failed", "failed,success,"])
def test_list_executions_filters_by_a_comma_separated_status_list(api, history, statuses):
    assert listed_ids(api, {"status": statuses}) == [history["a_success"].pk, history["a_failed"].pk]


def test_list_executions_with_an_unknown_status_answers_400(api, history):
    error = assert_error(*api.get(EXECUTIONS, {"status": "success,finished"}), 400)
    assert error["details"]["field"] == "status"
    assert "finished" in error["error"]


def test_list_executions_time_window_bounds_scheduled_time_inclusively(api, history):
    start = history["a_failed"].scheduled_time
    end = history["a_success"].scheduled_time
    assert listed_ids(api, {"start_time": iso(start), "end_time": iso(end)}) == [history["a_success"].pk,
                                                                                 history["a_failed"].pk]
    assert listed_ids(api, {"start_time": iso(history["now"] - timedelta(minutes=45))}) == [history["b_pending"].pk]
    assert listed_ids(api, {"end_time": iso(history["now"] - timedelta(hours=2, minutes=30))}) == [
        history["b_running"].pk]


def test_list_executions_combines_filters(api, history):
    params = {"task_id": history["task_b"].pk, "status": "running,success", "executor_id": history["executor"].pk}
    assert listed_ids(api, params) == [history["b_running"].pk]


@pytest.mark.parametrize("params", [{"start_time": "yesterday"}, {"end_time": "2024-13-45T00:00:00Z"},
                                   {"start_time": "0001-01-01T00:00:00+14:00"},
                                   {"end_time": "9999-12-31T23:59:59-14:00"}])
def test_list_executions_with_an_unusable_time_answers_400(api, history, params):
    error = assert_error(*api.get(EXECUTIONS, params), 400)
    assert error["details"]["field"] in params


def test_list_executions_pages(api, make_execution, make_task):
    task = make_task()
    now = timezone.now()
    ids = [make_execution(task=task, scheduled_time=now - timedelta(minutes=i)).pk for i in range(5)]
    data = assert_ok(*api.get(EXECUTIONS, {"page": 2, "page_size": 2}))
    assert [row["id"] for row in data["data"]] == ids[2:4]
    assert (data["total"], data["page"], data["page_size"], data["total_pages"]) == (5, 2, 2, 3)


def test_list_counts_exactly_only_up_to_a_bound_past_the_page(api, history, monkeypatch):
    # An exact COUNT(*) over a million rows cost more than the page; beyond the bound, total is a lower bound.
    monkeypatch.setattr("scheduler_project.pagination.COUNT_AHEAD", 2)
    data = assert_ok(*api.get(EXECUTIONS, {"page_size": 1}))
    assert (data["total"], data["total_pages"], data["total_is_exact"]) == (2, 2, False)
    assert len(data["data"]) == 1
    data = assert_ok(*api.get(EXECUTIONS, {"page_size": 1, "page": 3}))  # past the bound: still answered
    assert (data["total"], data["total_is_exact"]) == (4, True)
    assert [row["id"] for row in data["data"]] == [history["a_failed"].pk]
    data = assert_ok(*api.get(EXECUTIONS, {"task_id": history["task_a"].pk}))
    assert (data["total"], data["total_is_exact"]) == (2, True)


def test_list_rows_carry_their_task_and_executor_in_page_order(api, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):  # auth, ids, rows with task and executor, count: not one per row
        data = assert_ok(*api.get(EXECUTIONS))
    assert [row["id"] for row in data["data"]] == [history[name].pk for name in
                                                   ("b_pending", "a_success", "a_failed", "b_running")]
    first = data["data"][1]
    assert first["task"] == {"id": history["task_a"].pk, "name": "task-a", "status": history["task_a"].status}
    assert first["executor"]["name"] == "data-processor-1"
    assert first["logs"] == "done" and first["result"] == {"processed_records": 1000}


def test_list_rows_are_exactly_what_the_execution_serializer_makes(api, history, make_execution):
    """The list builds its rows from values, not DRF fields (issue #8): the JSON must not differ by a byte."""
    from rest_framework.renderers import JSONRenderer

    from executions.serializers import ExecutionSerializer

    now = timezone.now().replace(microsecond=123456)
    make_execution(task=history["task_a"], executor=history["executor"], status="running",
                   scheduled_time=now, start_time=now, progress_percent=42.5, progress_step="copying",
                   progress_updated_at=now, parameters={"batch": [1, 2]}, trigger_type="manual",
                   retry_of=history["a_failed"], retry_count=1, result=None)
    response = api.client.get(EXECUTIONS, {"page_size": 100})
    rows = TaskExecution.objects.select_related("task", "executor").order_by("-scheduled_time", "-id")
    expected = response.json()
    assert len(expected["data"]["data"]) == 5
    expected["data"]["data"] = ExecutionSerializer(rows, many=True).data
    assert response.content == JSONRenderer().render(expected)


def test_list_executions_page_size_over_100_is_capped_at_100(api, history):
    data = assert_ok(*api.get(EXECUTIONS, {"page_size": 500}))
    assert data["page_size"] == 100


# --- stats ----------------------------------------------------------------------------------------------------

# (status, duration in ms) of one task's runs.
STATS_RUNS = [
    ("success", 1000), ("success", 2000), ("success", 3000), ("failed", 500), ("timeout", 10_000),
    ("running", None), ("pending", None), ("skipped", None), ("cancelled", 1750),
]


@pytest.fixture
def stats_history(make_task, make_execution):
    task = make_task()
    now = timezone.now()
    for minutes, (status, duration) in enumerate(STATS_RUNS, start=1):
        scheduled = now - timedelta(minutes=minutes)
        make_execution(task=task, status=status, scheduled_time=scheduled, duration_ms=duration,
                       start_time=scheduled if duration is not None or status == "running" else None,
                       end_time=scheduled + timedelta(milliseconds=duration) if duration is not None else None)
    # Another task, a day and a half ago: outside the default window of the last 24 hours.
    old = make_execution(status="success", scheduled_time=now - timedelta(hours=36), duration_ms=100_000)
    return task, now, old


def test_execution_stats_are_exact_on_a_known_history(api, stats_history):
    task, _, _ = stats_history
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"task_id": task.pk}))
    assert {key: data[key] for key in ("total", "success", "failed", "timeout", "running", "pending", "skipped",
                                       "cancelled")} == {
        "total": 9, "success": 3, "failed": 1, "timeout": 1, "running": 1, "pending": 1, "skipped": 1,
        "cancelled": 1,
    }
    assert data["success_rate"] == 60.0  # 3 of the 5 finished (success, failed, timeout): not skipped, cancelled
    # Durations of the six finished runs that recorded one: 18 250 ms in all, 3 041.67 ms on average.
    assert data["avg_duration"] == 3.042
    assert data["total_duration"] == 18.25


def test_execution_stats_over_a_window_cover_every_task(api, stats_history):
    _, now, _ = stats_history
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"start_time": iso(now - timedelta(days=3))}))
    assert (data["total"], data["success"]) == (10, 4)
    assert data["success_rate"] == 66.67  # 4 of the 6 finished
    assert data["total_duration"] == 118.25
    assert data["avg_duration"] == round(118_250 / 7 / 1000, 3)
    assert parse_iso(data["start_time"]) == now - timedelta(days=3)
    assert now <= parse_iso(data["end_time"]) <= timezone.now()  # the end it used: the time of the request


def test_execution_stats_without_start_time_cover_the_last_24_hours(api, stats_history):
    # All history of a million rows took seconds to count: the default window keeps the cost bounded, and
    # the answer states the window its figures are exact for.
    _, now, old = stats_history
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats"))
    assert (data["total"], data["success"]) == (9, 3)  # the old run, 36 hours ago, is outside
    end = parse_iso(data["end_time"])  # echoed, not null: the window is stated whole
    assert now <= end <= timezone.now()
    assert end - parse_iso(data["start_time"]) == timedelta(hours=24)


def test_execution_stats_without_end_time_count_no_run_fired_ahead_of_now(api, stats_history, make_execution):
    task, now, _ = stats_history
    make_execution(task=task, status="pending", scheduled_time=timezone.now() + timedelta(seconds=2))
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"task_id": task.pk}))
    assert (data["total"], data["pending"]) == (9, 1)


def test_execution_stats_respect_the_time_window(api, stats_history):
    _, now, old = stats_history
    # end_time alone: the 24 hours before it.
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"end_time": iso(now - timedelta(hours=12))}))
    assert (data["total"], data["success"], data["success_rate"], data["total_duration"]) == (1, 1, 100.0, 100.0)
    assert parse_iso(data["start_time"]) == now - timedelta(hours=36)
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"start_time": iso(now - timedelta(minutes=3, seconds=30)),
                                                       "end_time": iso(now)}))
    assert (data["total"], data["success"]) == (3, 3)
    assert data["avg_duration"] == 2.0


def test_execution_stats_field_names_and_types_follow_the_spec(api, stats_history):
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats"))
    assert {"total", "success", "failed", "running", "pending", "success_rate", "avg_duration",
            "total_duration"} <= set(data)
    for key in ("total", "success", "failed", "running", "pending"):
        assert is_int(data[key]), key
    for key in ("success_rate", "avg_duration", "total_duration"):
        assert is_number(data[key]), key


def test_execution_stats_of_no_history_are_zero(api):
    data = assert_ok(*api.get(f"{EXECUTIONS}/stats", {"task_id": "nothing-here"}))
    assert (data["total"], data["success_rate"], data["avg_duration"], data["total_duration"]) == (0, 0.0, 0.0, 0.0)


# --- detail ---------------------------------------------------------------------------------------------------


def test_get_execution_answers_spec_detail_with_fuller_task_and_executor(api, history):
    execution = history["a_success"]
    data = assert_ok(*api.get(f"{EXECUTIONS}/{execution.pk}"))
    assert_execution_shape(data)
    assert EXECUTION_KEYS | {"task", "executor"} <= set(data)
    assert data["id"] == execution.pk
    assert same_instant(data["scheduled_time"], execution.scheduled_time)
    task, executor = history["task_a"], history["executor"]
    assert data["task"] == {"id": task.pk, "name": "task-a", "status": "active",
                            "cron_expression": task.cron_expression, "execution_mode": "parallel",
                            "load_balance_strategy": "round_robin"}
    assert data["executor"] == {"id": executor.pk, "name": "data-processor-1", "status": "online",
                                "instance_id": executor.instance_id, "base_url": executor.base_url, "is_healthy": True}


def test_get_unknown_execution_answers_404_30001(api):
    assert_error(*api.get(f"{EXECUTIONS}/exec-missing"), 404, 30001, path=f"{EXECUTIONS}/exec-missing")


# --- callback -------------------------------------------------------------------------------------------------


@pytest.fixture
def running(make_task, make_executor, make_execution):
    started = timezone.now() - timedelta(seconds=10)
    return make_execution(task=make_task(max_retry=0), executor=make_executor(), status="running",
                          start_time=started, logs="started")


def test_callback_answers_执行回调处理成功_and_records_the_result(signed, running):
    end = running.start_time + timedelta(seconds=5)
    request = {"status": "success", "result": {"processed_records": 1000, "errors": []},
               "logs": "Task completed successfully.", "end_time": iso(end)}
    status, body = signed.post(f"{EXECUTIONS}/{running.pk}/callback", request)
    assert (status, body) == (200, {"code": 200, "message": "执行回调处理成功"})
    running.refresh_from_db()
    assert running.status == "success"
    assert running.result == {"processed_records": 1000, "errors": []}
    assert running.logs == "started\nTask completed successfully."
    assert running.end_time == end
    assert running.duration_ms == 5000


def test_callback_without_end_time_ends_the_run_now(signed, running):
    before = timezone.now()
    assert_ok(*signed.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": "failed"}), message="执行回调处理成功")
    running.refresh_from_db()
    assert running.status == "failed"
    assert before <= running.end_time <= timezone.now()
    assert running.duration_ms >= 10_000


def test_callback_with_an_end_time_before_the_start_ends_the_run_at_its_start(signed, running):
    too_early = running.start_time - timedelta(minutes=5)
    assert_ok(*signed.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": "success", "end_time": iso(too_early)}),
              message="执行回调处理成功")
    running.refresh_from_db()
    assert (running.end_time, running.duration_ms) == (running.start_time, 0)


@pytest.mark.parametrize("outcome", ["success", "failed", "timeout"])
def test_callback_accepts_each_spec_outcome(signed, running, outcome):
    assert_ok(*signed.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": outcome}), message="执行回调处理成功")
    assert TaskExecution.objects.get(pk=running.pk).status == outcome


def test_callback_applies_once_then_answers_409_30002_and_leaves_the_row_unchanged(signed, running):
    assert_ok(*signed.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": "success", "result": {"n": 1},
                                                                "logs": "first"}),
              message="执行回调处理成功")
    running.refresh_from_db()
    snapshot = (running.status, running.result, running.logs, running.end_time, running.duration_ms)
    error = assert_error(*signed.post(f"{EXECUTIONS}/{running.pk}/callback",
                                   {"status": "failed", "result": {"n": 2}, "logs": "second",
                                    "end_time": iso(timezone.now())}),
                         409, 30002)
    assert error["details"]["status"] == "success"
    running.refresh_from_db()
    assert (running.status, running.result, running.logs, running.end_time, running.duration_ms) == snapshot


def test_callback_for_a_pending_run_is_applied(signed, make_execution):
    execution = make_execution(status="pending")
    assert_ok(*signed.post(f"{EXECUTIONS}/{execution.pk}/callback", {"status": "success"}), message="执行回调处理成功")
    assert TaskExecution.objects.get(pk=execution.pk).status == "success"


def test_callback_failure_of_a_task_with_retries_left_queues_the_next_attempt(signed, make_task, make_execution):
    execution = make_execution(task=make_task(max_retry=2), status="running", start_time=timezone.now())
    assert_ok(*signed.post(f"{EXECUTIONS}/{execution.pk}/callback", {"status": "failed"}), message="执行回调处理成功")
    retry = TaskExecution.objects.get(retry_of=execution)
    assert (retry.status, retry.retry_count, retry.task_id) == ("pending", 1, execution.task_id)


def test_callback_for_an_unknown_execution_answers_404_30001(signed, make_executor):
    assert_error(*signed.post(f"{EXECUTIONS}/ghost/callback", {"status": "success"}, executor=make_executor()),
                 404, 30001,
                 path=f"{EXECUTIONS}/ghost/callback")


@pytest.mark.parametrize("body", [{}, {"status": "running"}, {"status": "pending"}, {"status": "done"},
                                  {"status": "success", "result": [1]}, {"status": "success", "end_time": "soon"},
                                  {"status": "success", "logs": 5}, {"status": "success", "extra": 1}])
def test_callback_with_an_invalid_body_answers_400_and_leaves_the_run_running(signed, running, body):
    assert_error(*signed.post(f"{EXECUTIONS}/{running.pk}/callback", body), 400)
    assert TaskExecution.objects.get(pk=running.pk).status == "running"


# --- stop -----------------------------------------------------------------------------------------------------


def test_stop_running_execution_answers_停止指令已发送_and_cancels_it(api, running):
    before = timezone.now()
    data = assert_ok(*api.post(f"{EXECUTIONS}/{running.pk}/stop"), message="停止指令已发送")
    assert set(data) == {"execution_id", "previous_status", "current_status", "stopped_at"}
    assert (data["execution_id"], data["previous_status"], data["current_status"]) == (
        running.pk, "running", "cancelled",
    )
    stopped_at = parse_iso(data["stopped_at"])
    assert before <= stopped_at <= timezone.now()
    running.refresh_from_db()
    assert running.status == "cancelled"
    assert running.end_time == stopped_at
    assert "stopped by operator" in running.logs


@pytest.mark.parametrize("state", ["pending", "success", "failed", "timeout", "skipped", "cancelled"])
def test_stop_of_an_execution_that_is_not_running_answers_409_30002(api, make_execution, state):
    execution = make_execution(status=state)
    error = assert_error(*api.post(f"{EXECUTIONS}/{execution.pk}/stop"), 409, 30002)
    assert error["details"]["status"] == state
    assert TaskExecution.objects.get(pk=execution.pk).status == state


def test_stop_twice_answers_409_30002_the_second_time(api, running):
    assert_ok(*api.post(f"{EXECUTIONS}/{running.pk}/stop"), message="停止指令已发送")
    assert_error(*api.post(f"{EXECUTIONS}/{running.pk}/stop"), 409, 30002)


def test_stop_of_an_unknown_execution_answers_404_30001(api):
    assert_error(*api.post(f"{EXECUTIONS}/ghost/stop"), 404, 30001)
