"""/api/v1/alerts/...: channels (URL write-only, masked in every answer), rules, incidents, notifications."""

from __future__ import annotations

import json

import pytest

from alerts.models import AlertRule, Channel, Incident, Notification
from tests.helpers import assert_error, assert_ok

SLACK = "slack://T0000SECRET/B1111SECRET/C2222SECRETTOKEN"


@pytest.fixture
def channel(api) -> dict:
    status, body = api.post("/api/v1/alerts/channels", {"name": "ops slack", "url": SLACK})
    return assert_ok(status, body, http_status=201, message="created")


def test_create_channel_stores_the_url_encrypted_and_answers_it_masked(api, channel):
    assert channel["url"] == "slack://••••••" and channel["signing_secret"]
    stored = Channel.objects.get(pk=channel["id"])
    assert "SECRET" not in stored.url_encrypted and stored.url == SLACK
    for path in ("/api/v1/alerts/channels", f"/api/v1/alerts/channels/{channel['id']}"):
        status, body = api.get(path)
        assert status == 200 and "SECRET" not in json.dumps(body)
        assert "signing_secret" not in json.dumps(body)


def test_update_without_url_keeps_it_and_with_url_replaces_it(api, channel):
    status, body = api.put(f"/api/v1/alerts/channels/{channel['id']}", {"enabled": False, "rate_limit": 5})
    assert_ok(status, body)
    stored = Channel.objects.get(pk=channel["id"])
    assert stored.url == SLACK and not stored.enabled and stored.rate_limit == 5
    status, body = api.put(f"/api/v1/alerts/channels/{channel['id']}", {"url": "log://"})
    assert assert_ok(status, body)["url"] == "log://••••••"
    assert Channel.objects.get(pk=channel["id"]).url == "log://"


@pytest.mark.parametrize("url", ["not a url", "nosuchservice://x/y", "signed+ftp://host/x", "signed+https://?x=1"])
def test_a_url_no_channel_can_use_is_refused(api, url):
    status, body = api.post("/api/v1/alerts/channels", {"name": "bad", "url": url})
    assert_error(status, body, 400)
    assert url not in json.dumps(body, ensure_ascii=False)
    assert not Channel.objects.exists()


def test_a_taken_name_is_a_conflict(api, channel):
    status, body = api.post("/api/v1/alerts/channels", {"name": "ops slack", "url": "log://"})
    assert_error(status, body, 409)


def test_only_admins_change_channels(api_as, channel):
    operator = api_as("operator")
    status, body = operator.post("/api/v1/alerts/channels", {"name": "x", "url": "log://"})
    assert_error(status, body, 403)
    status, body = operator.post(f"/api/v1/alerts/channels/{channel['id']}/test")
    assert_error(status, body, 403)
    status, body = api_as("viewer").get("/api/v1/alerts/channels")
    assert status == 200 and "SECRET" not in json.dumps(body)


def test_send_test_queues_a_test_notification(api, channel):
    status, body = api.post(f"/api/v1/alerts/channels/{channel['id']}/test")
    queued = assert_ok(status, body, http_status=202, message="queued")
    assert queued["kind"] == "test" and queued["status"] == "pending"
    assert Notification.objects.get(pk=queued["id"]).channel_id == channel["id"]


def test_missing_channel_is_404(api):
    status, body = api.get("/api/v1/alerts/channels/nope")
    assert_error(status, body, 404)


def test_rules_global_and_per_task(api, make_task, channel):
    status, body = api.post("/api/v1/alerts/rules", {"consecutive_failures": 3, "silence_windows": "22:00-07:00"})
    global_rule = assert_ok(status, body, http_status=201, message="created")
    assert global_rule["task_id"] is None and global_rule["on_failure"] == "final"
    status, body = api.post("/api/v1/alerts/rules", {})
    assert_error(status, body, 409)

    task = make_task()
    status, body = api.post("/api/v1/alerts/rules", {"task_id": task.pk, "on_failure": "each",
                                                     "duration_factor": 3, "channel_ids": [channel["id"]]})
    override = assert_ok(status, body, http_status=201, message="created")
    assert override["task_id"] == task.pk and override["channel_ids"] == [channel["id"]]
    # a task's new rule starts from the global one: what it does not say, it inherits
    assert override["consecutive_failures"] == 3 and override["silence_windows"] == "22:00-07:00"
    status, body = api.put(f"/api/v1/alerts/rules/{override['id']}", {"mute_until": "2030-01-01T00:00:00Z"})
    assert assert_ok(status, body)["mute_until"].startswith("2030-01-01")
    assert AlertRule.objects.count() == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"silence_windows": "25:00-01:00"}, "silence_windows"),
    ({"on_failure": "sometimes"}, "on_failure"),
    ({"duration_factor": 1}, "duration_factor"),
    ({"channel_ids": ["nope"]}, "channel_ids"),
    ({"task_id": "nope"}, None),
])
def test_bad_rules_are_refused(api, body, field):
    status, answer = api.post("/api/v1/alerts/rules", body)
    assert status in (400, 404)
    if field:
        assert field in json.dumps(answer)
    assert not AlertRule.objects.exists()


def test_incidents_list_filters_open_and_resolved(api, make_task):
    task = make_task()
    from django.utils import timezone
    now = timezone.now()
    Incident.objects.create(condition="run_failed", subject=f"task:{task.pk}", open_key="k", task=task,
                            summary="open one", opened_at=now, last_seen_at=now)
    Incident.objects.create(condition="run_failed", subject=f"task:{task.pk}", task=task, summary="closed one",
                            opened_at=now, last_seen_at=now, resolved_at=now)
    status, body = api.get("/api/v1/alerts/incidents", {"state": "open"})
    assert [i["summary"] for i in assert_ok(status, body)] == ["open one"]
    status, body = api.get("/api/v1/alerts/incidents", {"state": "resolved", "task_id": task.pk})
    assert [i["summary"] for i in assert_ok(status, body)] == ["closed one"]
