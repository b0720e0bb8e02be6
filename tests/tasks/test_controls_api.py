"""Windows, jitter, calendars, labels, next-runs and backfill through the API."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from executions.models import TaskExecution

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # a Sunday in the past
FUTURE_SUNDAY = datetime(2030, 11, 3, 0, 0, tzinfo=UTC)


@pytest.fixture
def client(admin_client):
    return admin_client


def call(client, method, url, body=None):
    response = getattr(client, method)(url, json.dumps(body) if body is not None else None,
                                       content_type="application/json")
    return response.status_code, response.json()


def make_task(client, **fields):
    body = {"name": "t", "cron_expression": "0 */10 * * * *", **fields}
    status, answer = call(client, "post", "/api/v1/tasks", body)
    assert status == 201, answer
    return answer["data"]


def make_calendar(client, **fields):
    status, answer = call(client, "post", "/api/v1/calendars", {"name": "maintenance", **fields})
    assert status == 201, answer
    return answer["data"]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_every_ten_minutes_except_the_sunday_window_and_holidays_is_one_task(client):
    sunday = make_calendar(client, timezone="UTC", entries=["Sun 02:00-04:00"])
    holidays = make_calendar(client, name="holidays", entries=["2026-12-25", "2026-12-31..2027-01-01"])
    task = make_task(client, calendars=[sunday["id"], holidays["id"]], start_at=iso(START + timedelta(hours=1)))
    assert set(task["calendars"]) == {sunday["id"], holidays["id"]}
    status, answer = call(client, "get", f"/api/v1/calendars/{sunday['id']}")
    assert status == 200 and answer["data"]["task_ids"] == [task["id"]]


@pytest.mark.parametrize(
    ("body", "field", "constraint"),
    [
        ({"entries": ["Sun 02:00-25:00"]}, "entries", "invalid_entry"),
        ({"entries": ["someday"]}, "entries", "invalid_entry"),
        ({"timezone": "Mars/Base"}, "timezone", "invalid_timezone"),
    ],
)
def test_bad_calendars_are_refused(client, body, field, constraint):
    status, error = call(client, "post", "/api/v1/calendars", {"name": "c", **body})
    assert status == 400 and error["details"]["field"].startswith(field)
    assert constraint in json.dumps(error["details"])
    assert not call(client, "get", "/api/v1/calendars")[1]["data"]


def test_calendar_names_are_unique_and_unknown_calendars_are_404(client):
    make_calendar(client)
    status, error = call(client, "post", "/api/v1/calendars", {"name": "maintenance"})
    assert status == 409
    assert call(client, "get", "/api/v1/calendars/nope")[0] == 404
    assert call(client, "delete", "/api/v1/calendars/nope")[0] == 404


@pytest.mark.parametrize(
    ("fields", "field", "constraint"),
    [
        ({"calendars": ["nope"]}, "calendars", "does_not_exist"),
        ({"start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"}, "end_at", "window"),
        ({"jitter_seconds": 3601}, "jitter_seconds", "max_value"),
        ({"executor_labels": {"region": ["eu"]}}, "executor_labels", ""),
        ({"execution_mode": "batch"}, "execution_mode", "invalid_choice"),
    ],
)
def test_bad_control_fields_are_refused_and_nothing_is_written(client, fields, field, constraint):
    status, error = call(client, "post", "/api/v1/tasks", {"name": "t", "cron_expression": "0 * * * * *", **fields})
    assert status == 400 and error["details"]["field"].startswith(field)
    assert constraint in json.dumps(error["details"])
    assert call(client, "get", "/api/v1/tasks")[1]["data"] == []


def test_next_runs_reflect_the_window_calendars_and_jitter(client):
    sunday = make_calendar(client, entries=["Sun 00:10-00:30"])
    task = make_task(client, start_at=iso(FUTURE_SUNDAY), end_at=iso(FUTURE_SUNDAY + timedelta(minutes=50)),
                     jitter_seconds=20, calendars=[sunday["id"]])
    status, answer = call(client, "get", f"/api/v1/tasks/{task['id']}/next-runs?count=10")
    data = answer["data"]
    assert status == 200
    assert data["next_runs"] == [iso(FUTURE_SUNDAY + timedelta(minutes=m)) for m in (0, 30, 40, 50)]  # window ends
    skipped = [fire for fire in data["fires"] if fire["blackout"]]
    assert [fire["scheduled_time"] for fire in skipped] == [iso(FUTURE_SUNDAY + timedelta(minutes=m)) for m in (10, 20)]
    assert skipped[0]["blackout"] == "calendar 'maintenance' (Sun 00:10-00:30)"
    for fire in data["fires"]:
        delay = datetime.fromisoformat(fire["dispatch_at"]) - datetime.fromisoformat(fire["scheduled_time"])
        assert timedelta(0) <= delay < timedelta(seconds=20)
    assert any(fire["dispatch_at"] != fire["scheduled_time"] for fire in data["fires"])


def backfill(client, task, start, end):
    return call(client, "post", f"/api/v1/tasks/{task['id']}/backfill",
                {"start_time": iso(start), "end_time": iso(end)})


def test_backfill_records_each_fire_time_once_however_often_it_is_asked(client):
    task = make_task(client)
    status, answer = backfill(client, task, START, START + timedelta(hours=1))
    assert status == 200
    assert answer["data"] | {"task_id": None} == {
        "task_id": None, "start_time": iso(START), "end_time": iso(START + timedelta(hours=1)),
        "fire_times": 7, "created": 7, "skipped": 0, "existing": 0}
    status, again = backfill(client, task, START + timedelta(minutes=30), START + timedelta(hours=2))
    assert (again["data"]["created"], again["data"]["existing"]) == (6, 4)
    runs = TaskExecution.objects.filter(task_id=task["id"]).order_by("scheduled_time")
    assert [run.scheduled_time for run in runs] == [START + timedelta(minutes=10 * k) for k in range(13)]
    assert {(run.trigger_type, run.status, run.retry_count) for run in runs} == {("backfill", "pending", 0)}


def test_backfill_records_blacked_out_times_as_skipped(client):
    sunday = make_calendar(client, entries=["Sun 00:00-00:15"])
    task = make_task(client, calendars=[sunday["id"]])
    _, answer = backfill(client, task, START, START + timedelta(minutes=30))
    assert (answer["data"]["created"], answer["data"]["skipped"]) == (2, 2)
    skipped = TaskExecution.objects.filter(task_id=task["id"], status="skipped")
    assert all("blackout: calendar 'maintenance'" in run.logs for run in skipped)


@override_settings(SCHEDULER={**__import__("django.conf").conf.settings.SCHEDULER, "BACKFILL_LIMIT": 5})
def test_backfill_past_the_cap_is_refused_whole(client):
    task = make_task(client)
    status, error = backfill(client, task, START, START + timedelta(hours=1))
    assert status == 400 and error["details"]["constraint"] == "max_fires"
    assert not TaskExecution.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"start_time": "2026-11-02T00:00:00Z", "end_time": "2026-11-01T00:00:00Z"}, 400),
        ({"start_time": "2026-11-01T00:00:00Z"}, 400),
        ({"start_time": "x", "end_time": "2026-11-01T00:00:00Z"}, 400),
        ({"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-01T01:00:00Z", "extra": 1}, 400),
    ],
)
def test_bad_backfill_requests_are_400(client, body, status):
    task = make_task(client)
    assert call(client, "post", f"/api/v1/tasks/{task['id']}/backfill", body)[0] == status
    assert call(client, "post", "/api/v1/tasks/nope/backfill", body)[0] in (400, 404)


def test_executor_labels_through_the_api(client):
    task = make_task(client, executor_labels={"region": "eu"})
    assert task["executor_labels"] == {"region": "eu"}
