"""Progress reports (POST /api/v1/executions/{id}/progress), progress in the execution views, and the running
executions (GET /api/v1/scheduler/running)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from tests.helpers import PAGE_KEYS, assert_error, assert_ok, is_iso_z, parse_iso, same_instant

EXECUTIONS = "/api/v1/executions"
RUNNING = "/api/v1/scheduler/running"


@pytest.fixture
def api(admin_or_executor_api):
    return admin_or_executor_api  # the executor's own POSTs come signed, as only those pass authentication


def progress_path(execution) -> str:
    return f"{EXECUTIONS}/{execution.pk}/progress"


@pytest.fixture
def running(make_execution, make_executor):
    return make_execution(status="running", executor=make_executor(), start_time=timezone.now())


# --- progress -------------------------------------------------------------------------------------------------


def test_progress_is_stored_and_answered(api, running):
    before = timezone.now()
    data = assert_ok(*api.post(progress_path(running), {"percent": 42.5, "step": "copying files"}))
    assert data["execution_id"] == running.pk
    assert data["status"] == "running"
    assert (data["progress_percent"], data["progress_step"]) == (42.5, "copying files")
    assert parse_iso(data["progress_updated_at"]) >= before.replace(microsecond=0)
    row = TaskExecution.objects.get(pk=running.pk)
    assert (row.progress_percent, row.progress_step) == (42.5, "copying files")
    assert same_instant(data["progress_updated_at"], row.progress_updated_at)


def test_progress_without_step_keeps_the_last_step_and_empty_clears_it(api, running):
    assert_ok(*api.post(progress_path(running), {"percent": 10, "step": "download"}))
    data = assert_ok(*api.post(progress_path(running) + "/", {"percent": 20}))
    assert (data["progress_percent"], data["progress_step"]) == (20.0, "download")
    data = assert_ok(*api.post(progress_path(running), {"percent": 30, "step": ""}))
    assert (data["progress_percent"], data["progress_step"]) == (30.0, "")


def test_progress_of_a_pending_execution_is_accepted(api, make_execution):
    pending = make_execution(status="pending")
    assert assert_ok(*api.post(progress_path(pending), {"percent": 0}))["progress_percent"] == 0.0


@pytest.mark.parametrize("percent", [0, 100, 99.999])
def test_progress_accepts_the_bounds(api, running, percent):
    assert assert_ok(*api.post(progress_path(running), {"percent": percent}))["progress_percent"] == percent


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"percent": -0.1},
        {"percent": 100.01},
        {"percent": "50"},
        {"percent": True},
        {"percent": None},
        {"percent": 5, "step": "x" * 256},
        {"percent": 5, "step": 7},
        {"percent": 5, "step": None},
        {"percent": 5, "eta": 3},
    ],
    ids=["missing", "negative", "over-100", "string", "bool", "null", "long-step", "step-number", "step-null",
         "unknown-key"],
)
def test_progress_rejects_invalid_bodies(api, running, body):
    assert_error(*api.post(progress_path(running), body), 400)
    row = TaskExecution.objects.get(pk=running.pk)
    assert (row.progress_percent, row.progress_updated_at) == (None, None)


@pytest.mark.parametrize("status", ["success", "failed", "timeout", "skipped", "cancelled"])
def test_progress_of_a_final_execution_is_refused_with_30002(api, make_execution, status):
    execution = make_execution(status=status)
    assert_error(*api.post(progress_path(execution), {"percent": 50}), 409, 30002)
    assert TaskExecution.objects.get(pk=execution.pk).progress_percent is None


def test_progress_of_an_unknown_execution_is_30001(api):
    assert_error(*api.post(f"{EXECUTIONS}/unknown/progress", {"percent": 1}), 404, 30001)


def test_execution_views_show_progress(api, running):
    assert_ok(*api.post(progress_path(running), {"percent": 75, "step": "indexing"}))
    detail = assert_ok(*api.get(f"{EXECUTIONS}/{running.pk}"))
    assert (detail["progress_percent"], detail["progress_step"]) == (75.0, "indexing")
    assert is_iso_z(detail["progress_updated_at"])
    [row] = assert_ok(*api.get(EXECUTIONS))["data"]
    assert (row["progress_percent"], row["progress_step"]) == (75.0, "indexing")


def test_execution_without_progress_shows_nulls(api, make_execution):
    execution = make_execution(status="pending")
    detail = assert_ok(*api.get(f"{EXECUTIONS}/{execution.pk}"))
    assert (detail["progress_percent"], detail["progress_step"], detail["progress_updated_at"]) == (None, "", None)


# --- running executions ---------------------------------------------------------------------------------------


@pytest.fixture
def cluster(make_task, make_executor, make_execution):
    now = timezone.now()
    report = make_task(name="report")
    sync = make_task(name="sync")
    worker = make_executor(name="worker", instance_id="worker-1")
    older = make_execution(task=report, executor=worker, status="running", start_time=now - timedelta(minutes=10),
                           deadline=now + timedelta(minutes=5), progress_percent=60.0, progress_step="rendering",
                           progress_updated_at=now - timedelta(seconds=3))
    newer = make_execution(task=sync, executor=worker, status="running", start_time=now - timedelta(seconds=30))
    make_execution(task=sync, status="pending")
    make_execution(task=report, executor=worker, status="success", start_time=now - timedelta(hours=1),
                   end_time=now - timedelta(minutes=59))
    return {"now": now, "report": report, "sync": sync, "worker": worker, "older": older, "newer": newer}


def test_running_lists_only_running_executions_longest_first(api, cluster):
    status, body = api.get(RUNNING)
    data = assert_ok(status, body)
    assert set(data) == {"data", *PAGE_KEYS}
    assert (data["total"], data["page"], data["page_size"], data["total_pages"]) == (2, 1, 20, 1)
    assert [row["id"] for row in data["data"]] == [cluster["older"].pk, cluster["newer"].pk]


def test_running_rows_carry_task_executor_timing_and_progress(api, cluster):
    answered_after = timezone.now()
    row = assert_ok(*api.get(RUNNING))["data"][0]
    worker = cluster["worker"]
    assert row["task"] == {"id": cluster["report"].pk, "name": "report"}
    assert row["executor"] == {"id": worker.pk, "name": "worker", "instance_id": "worker-1"}
    assert same_instant(row["start_time"], cluster["older"].start_time)
    assert same_instant(row["deadline"], cluster["older"].deadline)
    elapsed = (answered_after - cluster["older"].start_time).total_seconds()
    assert elapsed - 0.01 <= row["running_seconds"] <= elapsed + 60
    assert (row["progress_percent"], row["progress_step"]) == (60.0, "rendering")
    assert same_instant(row["progress_updated_at"], cluster["older"].progress_updated_at)
    newer = assert_ok(*api.get(RUNNING))["data"][1]
    assert (newer["progress_percent"], newer["progress_step"], newer["deadline"]) == (None, "", None)
    assert 29 <= newer["running_seconds"] < 120


def test_running_pages_like_the_other_lists(api, cluster):
    first = assert_ok(*api.get(RUNNING, {"page_size": 1}))
    second = assert_ok(*api.get(RUNNING + "/", {"page_size": 1, "page": 2}))
    assert (first["total"], first["total_pages"]) == (2, 2)
    assert [row["id"] for row in first["data"] + second["data"]] == [cluster["older"].pk, cluster["newer"].pk]
    assert assert_ok(*api.get(RUNNING, {"page": 3, "page_size": 1}))["data"] == []
    assert_error(*api.get(RUNNING, {"page": 0}), 400)


def test_running_shows_a_run_whose_executor_was_deleted(api, cluster):
    cluster["worker"].delete()
    rows = assert_ok(*api.get(RUNNING))["data"]
    assert [row["executor"] for row in rows] == [None, None]


def test_running_is_empty_when_nothing_runs(api, make_execution):
    make_execution(status="pending")
    data = assert_ok(*api.get(RUNNING))
    assert (data["data"], data["total"], data["total_pages"]) == ([], 0, 0)
