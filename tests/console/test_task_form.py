"""Creating and editing tasks in the console: saved through the services, every refusal shown as a form
error (never a 500), the next five fire times previewed, executor assignments edited inline."""

from __future__ import annotations

import json

import pytest

from tasks.models import Task, TaskExecutor
from tests.console.conftest import url

INLINE = "task_executors"


def form_data(*, assignments: list[dict] | None = None, initial_assignments: int = 0, **overrides) -> dict:
    data = {
        "name": "sync-orders", "schedule_type": "cron", "cron_expression": "*/10 * * * * *", "timezone": "UTC",
        "interval_seconds": "", "start_at_0": "", "start_at_1": "", "run_at_0": "", "run_at_1": "",
        "parameters": '{"source": "a"}', "execution_mode": "parallel", "load_balance_strategy": "round_robin",
        "misfire_policy": "fire_once", "max_retry": "3", "timeout_seconds": "300", "priority": "0",
        "max_instances": "",
    }
    rows = assignments or []
    data.update({f"{INLINE}-TOTAL_FORMS": str(len(rows)), f"{INLINE}-INITIAL_FORMS": str(initial_assignments),
                 f"{INLINE}-MIN_NUM_FORMS": "0", f"{INLINE}-MAX_NUM_FORMS": "1000"})
    for index, row in enumerate(rows):
        data.update({f"{INLINE}-{index}-{key}": value for key, value in row.items()})
    data.update(overrides)
    return data


def errors_of(response) -> dict:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def test_add_creates_an_active_scheduled_task(admin_client):
    response = admin_client.post(url("tasks_task_add"), form_data())
    assert response.status_code == 302, errors_of(response)
    task = Task.objects.get(name="sync-orders")
    assert task.status == "active" and task.next_run_time is not None
    assert task.parameters == {"source": "a"}
    assert task.created_by.username == "admin" and task.created_by_key is None  # who added it is recorded


@pytest.mark.parametrize(("cron", "message"), [
    ("61 * * * *", "invalid minute field"),
    ("* * *", "must have 6 fields"),
    ("0 0 0 30 2 *", "never fires"),
])
def test_bad_cron_is_a_form_error(admin_client, cron, message):
    response = admin_client.post(url("tasks_task_add"), form_data(cron_expression=cron))
    errors = errors_of(response)
    assert message in " ".join(errors["cron_expression"])
    assert not Task.objects.exists()


@pytest.mark.parametrize(("parameters", "message"), [
    ('{"source": ', "Enter a valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
])
def test_bad_json_parameters_are_a_form_error(admin_client, parameters, message):
    errors = errors_of(admin_client.post(url("tasks_task_add"), form_data(parameters=parameters)))
    assert message in " ".join(errors["parameters"])


def test_the_other_field_rules_are_form_errors_too(admin_client, make_task):
    make_task(name="taken", status="deleted")
    errors = errors_of(admin_client.post(url("tasks_task_add"), form_data(
        name="taken", timezone="Mars/Olympus", max_retry="1000", timeout_seconds="0")))
    assert "already exists" in " ".join(errors["name"])
    assert "unknown time zone" in " ".join(errors["timezone"])
    assert errors["max_retry"] and errors["timeout_seconds"]


def test_an_interval_task_needs_its_interval(admin_client):
    errors = errors_of(admin_client.post(url("tasks_task_add"), form_data(schedule_type="interval",
                                                                          cron_expression="")))
    assert "required when schedule_type is 'interval'" in " ".join(errors["interval_seconds"])
    response = admin_client.post(url("tasks_task_add"), form_data(schedule_type="interval", cron_expression="",
                                                                  interval_seconds="90"))
    assert response.status_code == 302
    assert Task.objects.get().interval_seconds == 90


def test_change_updates_through_the_service_and_reschedules(admin_client, make_task):
    task = make_task(name="sync-orders", cron_expression="0 0 6 * * *")
    task.refresh_from_db()
    response = admin_client.post(url("tasks_task_change", task.pk),
                                 form_data(cron_expression="0 */5 * * * *", parameters='{"b": 2}'))
    assert response.status_code == 302, errors_of(response)
    task.refresh_from_db()
    assert task.cron_expression == "0 */5 * * * *" and task.parameters == {"b": 2}
    assert task.next_run_time is not None and task.next_run_time.minute % 5 == 0


def test_change_form_previews_the_next_five_fire_times(admin_client, make_task):
    task = make_task(cron_expression="0 0 6 * * *")
    page = admin_client.get(url("tasks_task_change", task.pk)).content.decode()
    assert 'id="schedule-preview"' in page and "At 06:00" in page
    assert page.count("06:00:00 UTC") == 5


def test_schedule_preview_endpoint_follows_what_is_typed(admin_client):
    preview = admin_client.get(url("tasks_task_schedule_preview"),
                               {"cron_expression": "*/15 * * * *", "timezone": "Asia/Tokyo"}).json()
    assert preview["description"] == "Every 15 minutes (Asia/Tokyo)"
    assert len(preview["fires"]) == 5 and preview["fires"][0]["local"].endswith("JST")
    bad = admin_client.get(url("tasks_task_schedule_preview"), {"cron_expression": "99 * * * *"}).json()
    assert bad["fires"] == [] and "minute" in bad["error"]
    interval = admin_client.get(url("tasks_task_schedule_preview"),
                                {"schedule_type": "interval", "interval_seconds": "3600"}).json()
    assert interval["description"].startswith("Every hour") and len(interval["fires"]) == 5


def test_a_deleted_task_is_read_only_until_restored(admin_client, make_task):
    task = make_task(status="deleted")
    response = admin_client.get(url("tasks_task_change", task.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert "Restore (paused)" in response.content.decode()
    assert admin_client.post(url("tasks_task_change", task.pk), form_data()).status_code == 403


def test_hard_delete_is_not_offered(admin_client, make_task):
    task = make_task()
    assert admin_client.get(url("tasks_task_delete", task.pk)).status_code == 403
    actions = dict(admin_client.get(url("tasks_task_changelist")).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions and "soft_delete" in actions


def test_inline_assignments_go_through_the_assignment_services(admin_client, make_task, make_executor):
    first, second = make_executor(), make_executor()
    response = admin_client.post(url("tasks_task_add"), form_data(assignments=[
        {"executor": first.pk, "priority": "0", "weight": "5"}, {"executor": second.pk, "priority": "1", "weight": "1"},
    ]))
    assert response.status_code == 302, errors_of(response)
    task = Task.objects.get()
    rows = {(a.executor_id, a.priority, a.weight) for a in TaskExecutor.objects.filter(task=task)}
    assert rows == {(first.pk, 0, 5), (second.pk, 1, 1)}

    existing = list(TaskExecutor.objects.filter(task=task).order_by("priority"))
    response = admin_client.post(url("tasks_task_change", task.pk), form_data(initial_assignments=2, assignments=[
        {"id": existing[0].pk, "task": task.pk, "executor": first.pk, "priority": "2", "weight": "7"},
        {"id": existing[1].pk, "task": task.pk, "executor": second.pk, "priority": "1", "weight": "1",
         "DELETE": "on"},
    ]))
    assert response.status_code == 302, errors_of(response)
    assert [(a.executor_id, a.priority, a.weight) for a in TaskExecutor.objects.filter(task=task)] == [
        (first.pk, 2, 7)]


def test_the_same_executor_twice_is_a_form_error(admin_client, make_executor):
    executor = make_executor()
    response = admin_client.post(url("tasks_task_add"), form_data(assignments=[
        {"executor": executor.pk, "priority": "0", "weight": "1"}, {"executor": executor.pk, "priority": "0",
                                                                   "weight": "1"},
    ]))
    assert response.status_code == 200
    assert "duplicate" in json.dumps(response.context["inline_admin_formsets"][0].formset.non_form_errors()).lower()
    assert not Task.objects.exists()


def test_a_refusal_that_slips_past_the_form_is_a_message_not_a_500(admin_client, make_task, monkeypatch):
    """A concurrent change can make the service refuse after the form was valid."""
    from scheduler_project.errors import DomainError, ErrorCode
    from tasks import services

    def refuse(**kwargs):
        raise DomainError(ErrorCode.TASK_STATE_FORBIDS, "cannot update a task whose status is 'deleted'")

    task = make_task(name="sync-orders")
    monkeypatch.setattr(services, "task_update", refuse)
    response = admin_client.post(url("tasks_task_change", task.pk), form_data(max_retry="5"), follow=True)
    assert response.status_code == 200
    assert any("Not saved: cannot update" in str(m) for m in response.context["messages"])
    task.refresh_from_db()
    assert task.max_retry == 3
