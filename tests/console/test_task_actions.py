"""Task actions on one or many rows (trigger with optional JSON parameters, pause, resume, soft delete,
restore) and the same verbs as buttons on a task's page. Refusals are messages, never error pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from executions.models import TaskExecution
from tests.console.conftest import changelist, messages_of, url


def act(admin_client, action: str, tasks, *, query: str = "", **extra):
    data = {"action": action, "_selected_action": [task.pk for task in tasks], **extra}
    return admin_client.post(changelist("task") + query, data, follow=True)


def test_trigger_asks_for_parameters_first(admin_client, make_task):
    task = make_task()
    response = act(admin_client, "trigger_now", [task])
    assert response.status_code == 200
    assert response.templates[0].name == "admin/console/action_form.html"
    assert task.name in response.content.decode()
    assert not TaskExecution.objects.exists()


def test_trigger_with_parameters_creates_one_manual_run_per_task(admin_client, make_task):
    first = make_task(parameters={"source": "a", "keep": 1})
    second = make_task()
    response = act(admin_client, "trigger_now", [first, second], apply="1", parameters='{"source": "b"}')
    assert "Triggered 2 tasks" in " ".join(messages_of(response))
    runs = {run.task_id: run for run in TaskExecution.objects.all()}
    assert runs[first.pk].parameters == {"source": "b", "keep": 1}
    assert runs[second.pk].parameters == {"source": "b"}
    assert {run.trigger_type for run in runs.values()} == {"manual"}
    assert {run.status for run in runs.values()} == {"pending"}


def test_trigger_with_bad_json_shows_the_form_again(admin_client, make_task):
    task = make_task()
    response = act(admin_client, "trigger_now", [task], apply="1", parameters="[1")
    assert response.status_code == 200
    assert response.context["form"].errors["parameters"]
    assert not TaskExecution.objects.exists()


def test_pause_resume_delete_restore(admin_client, make_task):
    task = make_task()
    assert "Paused 1 task" in " ".join(messages_of(act(admin_client, "pause", [task])))
    task.refresh_from_db()
    assert (task.status, task.next_run_time) == ("paused", None)

    assert "Resumed 1 task" in " ".join(messages_of(act(admin_client, "resume", [task])))
    task.refresh_from_db()
    assert task.status == "active" and task.next_run_time is not None

    act(admin_client, "soft_delete", [task])
    task.refresh_from_db()
    assert task.status == "deleted"

    # Deleted tasks are listed (and so selectable) under the "Deleted" filter.
    response = act(admin_client, "restore", [task], query="?state=deleted")
    assert "Restored 1 task" in " ".join(messages_of(response))
    task.refresh_from_db()
    assert (task.status, task.next_run_time) == ("paused", None)


def test_refusals_are_reported_per_task_and_the_rest_still_happens(admin_client, make_task):
    active, paused = make_task(name="active-one"), make_task(name="paused-one", status="paused")
    response = act(admin_client, "pause", [active, paused])
    assert response.status_code == 200
    texts = messages_of(response)
    assert any("Paused 1 task: active-one" in text for text in texts)
    assert any("paused-one: cannot pause a task whose status is 'paused'" in text for text in texts)


def test_deleting_cancels_waiting_runs_but_keeps_history(admin_client, make_task, run):
    task = make_task()
    waiting, done = run(task, status="pending"), run(task, status="success", minutes_ago=30)
    act(admin_client, "soft_delete", [task])
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, done.status) == ("cancelled", "success")


@pytest.mark.parametrize(("verb", "start", "end"), [
    ("pause", "active", "paused"), ("resume", "paused", "active"), ("soft-delete", "active", "deleted"),
    ("restore", "deleted", "paused"),
])
def test_buttons_on_the_task_page(admin_client, make_task, verb, start, end):
    task = make_task(status=start)
    response = admin_client.post(url(f"tasks_task_{verb}", task.pk))
    assert response.status_code == 302 and response["Location"] == url("tasks_task_change", task.pk)
    task.refresh_from_db()
    assert task.status == end


def test_a_refused_button_shows_a_message(admin_client, make_task):
    task = make_task(status="paused")
    response = admin_client.post(url("tasks_task_pause", task.pk), follow=True)
    assert response.status_code == 200
    assert any("cannot pause" in text for text in messages_of(response))


def test_buttons_only_answer_post(admin_client, make_task):
    assert admin_client.get(url("tasks_task_pause", make_task().pk)).status_code == 405


def test_trigger_page_runs_the_task_and_opens_the_new_execution(admin_client, make_task):
    task = make_task(parameters={"a": 1})
    page = admin_client.get(url("tasks_task_trigger", task.pk))
    assert page.status_code == 200 and "Trigger now" in page.content.decode()
    response = admin_client.post(url("tasks_task_trigger", task.pk), {"parameters": '{"b": 2}'})
    execution = TaskExecution.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:executions_taskexecution_change", args=[execution.pk])
    assert execution.parameters == {"a": 1, "b": 2}


def test_trigger_page_with_bad_json_is_a_form_error(admin_client, make_task):
    response = admin_client.post(url("tasks_task_trigger", make_task().pk), {"parameters": "{oops"})
    assert response.status_code == 200 and response.context["form"].errors["parameters"]


def test_triggering_a_deleted_task_is_refused_with_a_message(admin_client, make_task):
    task = make_task(status="deleted")
    response = admin_client.post(url("tasks_task_trigger", task.pk), {"parameters": ""}, follow=True)
    assert response.status_code == 200
    assert any("cannot trigger" in text for text in messages_of(response))
    assert not TaskExecution.objects.exists()


def test_unknown_task_ids_redirect_with_a_message(admin_client):
    response = admin_client.get(url("tasks_task_stats", "no-such-task"), follow=True)
    assert response.status_code == 200
    assert any("doesn’t exist" in text for text in messages_of(response))
