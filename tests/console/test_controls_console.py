"""The controls in the console: the backfill action, blackout calendars, and the task form's new fields."""

from __future__ import annotations

import pytest
from django.urls import reverse

from executions.models import TaskExecution
from tasks.models import BlackoutCalendar
from tests.console.conftest import changelist, messages_of

pytestmark = pytest.mark.django_db


def act(admin_client, action: str, tasks, **extra):
    data = {"action": action, "_selected_action": [task.pk for task in tasks], **extra}
    return admin_client.post(changelist("task"), data, follow=True)


RANGE = {"start_time_0": "2026-11-01", "start_time_1": "00:00:00", "end_time_0": "2026-11-01",
         "end_time_1": "00:20:00"}


def test_backfill_asks_for_the_range_first(admin_client, make_task):
    response = act(admin_client, "backfill", [make_task()])
    assert response.status_code == 200 and response.templates[0].name == "admin/console/action_form.html"
    assert not TaskExecution.objects.exists()


def test_backfill_twice_records_the_runs_once(admin_client, make_task):
    task = make_task(cron_expression="0 */5 * * * *")
    first = " ".join(messages_of(act(admin_client, "backfill", [task], apply="1", **RANGE)))
    assert "Backfilled 1 task" in first and "5 run(s) created" in first
    second = " ".join(messages_of(act(admin_client, "backfill", [task], apply="1", **RANGE)))
    assert "0 run(s) created" in second and "5 already backfilled" in second
    assert TaskExecution.objects.filter(task=task, trigger_type="backfill").count() == 5


def test_a_reversed_range_shows_the_form_again(admin_client, make_task):
    response = act(admin_client, "backfill", [make_task()], apply="1",
                   **{**RANGE, "end_time_0": "2026-10-01"})
    assert response.context["form"].errors["end_time"]
    assert not TaskExecution.objects.exists()


def test_calendar_admin_checks_each_entry(admin_client):
    add = reverse("admin:tasks_blackoutcalendar_add")
    response = admin_client.post(add, {"name": "ops", "timezone": "UTC", "entries_text": "Sun 02:00-04:00\nnope"})
    assert response.status_code == 200 and "is not a date" in response.content.decode()
    response = admin_client.post(add, {"name": "ops", "timezone": "Europe/Berlin",
                                       "entries_text": "Sun 02:00-04:00\n\n2026-12-25\n"}, follow=True)
    calendar = BlackoutCalendar.objects.get()
    assert (calendar.name, calendar.timezone, calendar.entries) == ("ops", "Europe/Berlin",
                                                                    ["Sun 02:00-04:00", "2026-12-25"])
    assert admin_client.get(reverse("admin:tasks_blackoutcalendar_changelist")).status_code == 200


def test_task_form_sets_calendars_window_jitter_and_labels(admin_client, make_task):
    calendar = BlackoutCalendar.objects.create(name="holidays", entries=["2026-12-25"])
    task = make_task()
    page = admin_client.get(reverse("admin:tasks_task_change", args=[task.pk]))
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update({"calendars": [calendar.pk], "jitter_seconds": "30", "executor_labels": '{"region": "eu"}',
                 "end_at_0": "2031-01-01", "end_at_1": "00:00:00", "parameters": "{}",
                 "task_executors-TOTAL_FORMS": "0", "task_executors-INITIAL_FORMS": "0"})
    data.pop("start_at", None)
    data.pop("end_at", None)
    data.pop("run_at", None)
    response = admin_client.post(reverse("admin:tasks_task_change", args=[task.pk]), data, follow=True)
    assert response.status_code == 200, response.content.decode()[:2000]
    task.refresh_from_db()
    assert list(task.calendars.all()) == [calendar]
    assert (task.jitter_seconds, task.executor_labels) == (30, {"region": "eu"})
    assert task.end_at is not None and task.end_at.year == 2031


def test_a_broadcast_run_page_lists_its_shards(admin_client, make_task):
    from core.clock import utc_now

    task = make_task(load_balance_strategy="broadcast")
    at = utc_now()
    parent = TaskExecution.objects.create(task=task, scheduled_time=at, status="running", shard_total=2)
    for k in (1, 2):
        TaskExecution.objects.create(task=task, scheduled_time=at, status="success", shard=k, shard_total=2)
    page = admin_client.get(reverse("admin:executions_taskexecution_change", args=[parent.pk])).content.decode()
    assert "broadcast run · first (this one)" in page and "shard 0 · first" in page and "shard 1 · first" in page
    listing = admin_client.get(reverse("admin:executions_taskexecution_changelist")).content.decode()
    assert "broadcast to 2" in listing and "shard 1 of 2" in listing
