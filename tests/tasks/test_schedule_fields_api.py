"""The schedule types, time zone, priority and max_instances through the task API; next-runs preview."""

import json

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(admin_client):
    """The API needs credentials: here an admin's session."""
    return admin_client


def post(client, url, body):
    response = client.post(url, json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def test_spec_000_cron_task_is_unchanged_and_defaults_to_cron_in_utc(client):
    status, body = post(client, "/api/v1/tasks", {"name": "a", "cron_expression": "0 */5 * * * *"})
    assert status == 201
    data = body["data"]
    assert data["schedule_type"] == "cron" and data["timezone"] == "UTC" and data["priority"] == 0
    assert data["max_instances"] is None and data["next_run_time"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "field", "constraint"),
    [
        ({"name": "b"}, "cron_expression", "required"),
        ({"name": "b", "schedule_type": "interval"}, "interval_seconds", "required"),
        ({"name": "b", "schedule_type": "date"}, "run_at", "required"),
        ({"name": "b", "schedule_type": "date", "run_at": "2001-01-01T00:00:00Z"}, "run_at", "past_run_at"),
        ({"name": "b", "cron_expression": "* * * * *", "timezone": "Mars/Base"}, "timezone", "invalid_timezone"),
        ({"name": "b", "cron_expression": "* * * * *", "max_instances": 0}, "max_instances", "min_value"),
        ({"name": "b", "schedule_type": "weekly"}, "schedule_type", "invalid_choice"),
    ],
)
def test_schedule_fields_are_validated(client, body, field, constraint):
    status, error = post(client, "/api/v1/tasks", body)
    assert status == 400
    assert error["details"]["field"] == field and error["details"]["constraint"] == constraint


def test_interval_task_via_api(client):
    status, body = post(client, "/api/v1/tasks", {"name": "i", "schedule_type": "interval", "interval_seconds": 30})
    assert status == 201 and body["data"]["interval_seconds"] == 30 and body["data"]["cron_expression"] == ""


def test_next_runs_previews_fire_times_in_the_task_zone(client):
    _, body = post(client, "/api/v1/tasks", {"name": "ny", "cron_expression": "0 9 * * *",
                                             "timezone": "America/New_York"})
    response = client.get(f"/api/v1/tasks/{body['data']['id']}/next-runs?count=3")
    data = response.json()["data"]
    assert response.status_code == 200 and len(data["next_runs"]) == 3
    assert data["timezone"] == "America/New_York"
    assert all(run.endswith(("13:00:00Z", "14:00:00Z")) for run in data["next_runs"])  # 09:00 EDT/EST


def test_next_runs_count_is_bounded(client):
    _, body = post(client, "/api/v1/tasks", {"name": "c", "cron_expression": "* * * * *"})
    response = client.get(f"/api/v1/tasks/{body['data']['id']}/next-runs?count=1000")
    assert response.status_code == 400 and response.json()["details"]["field"] == "count"


def test_date_task_done_after_its_run_shows_finished_at(client):
    run_at = (timezone.now() + timezone.timedelta(hours=1)).isoformat()
    status, body = post(client, "/api/v1/tasks", {"name": "d", "schedule_type": "date", "run_at": run_at})
    assert status == 201 and body["data"]["finished_at"] is None
    assert body["data"]["next_run_time"] is not None
