"""Execution history in the console: filters and date drill-down on a big table without N+1 or full counts,
a detail page with pretty JSON, logs and retry lineage, and stop / re-run through the services."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.utils import timezone

import executions.services as execution_services
from executions.models import TaskExecution
from tests.console.conftest import changelist, messages_of, url


def ids(admin_client, query: str = "") -> set[str]:
    response = admin_client.get(changelist("execution") + query)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


@pytest.fixture
def stops(monkeypatch):
    """The executors told to stop (the HTTP call is replaced)."""
    told = []
    monkeypatch.setattr(execution_services, "notify_executor_stop", lambda execution_id: told.append(execution_id))
    return told


def test_filters_status_task_executor_and_time(admin_client, make_task, make_executor, run):
    orders, billing = make_task(name="orders-sync"), make_task(name="billing")
    worker = make_executor(name="worker-eu", instance_id="eu-1")
    a = run(orders, status="failed", executor=worker, minutes_ago=30)
    b = run(orders, status="success", minutes_ago=60 * 5)
    c = run(billing, status="failed", scheduled_time=timezone.now() - timedelta(days=3))
    assert ids(admin_client) == {a.pk, b.pk, c.pk}
    assert ids(admin_client, "?status__exact=failed") == {a.pk, c.pk}
    assert ids(admin_client, "?status__in=failed,timeout&task=orders") == {a.pk}
    assert ids(admin_client, f"?task={billing.pk}") == {c.pk}
    assert ids(admin_client, "?executor=eu-1") == {a.pk}
    assert ids(admin_client, "?when=1h") == {a.pk}
    assert ids(admin_client, "?when=24h") == {a.pk, b.pk}
    assert ids(admin_client, f"?q={b.pk}") == {b.pk}
    day = c.scheduled_time
    assert ids(admin_client, f"?scheduled_time__year={day.year}&scheduled_time__month={day.month}"
                             f"&scheduled_time__day={day.day}") == {c.pk}


def test_list_shows_duration_and_skips_the_full_count(admin_client, run):
    run(status="success", duration_ms=83_000)
    response = admin_client.get(changelist("execution"))
    assert response.context["cl"].show_full_result_count is False
    assert response.context["cl"].date_hierarchy == "scheduled_time"
    assert "1 min 23 s" in response.content.decode()


def test_list_queries_do_not_grow_with_rows(make_task, make_executor, run, queries_for):
    run(status="success")
    few = queries_for(changelist("execution"))
    executor = make_executor()
    for index in range(40):
        run(make_task() if index % 2 else None, executor=executor, status="failed")
    assert queries_for(changelist("execution")) == few
    assert few <= 10, few


def test_detail_page_pretty_prints_and_shows_logs_and_lineage(admin_client, make_task, run):
    task = make_task()
    first = run(task, status="failed", parameters={"source": "a", "n": [1, 2]}, logs="step 1\nboom <oops>",
                result={"error": "disk full"})
    retry = TaskExecution.objects.create(task=task, scheduled_time=first.scheduled_time, retry_count=1,
                                         retry_of=first, status="success", result={"rows": 42})
    response = admin_client.get(url("executions_taskexecution_change", retry.pk))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert '"rows": 42' in page and 'class="console-pre console-json"' in page
    assert "retry 1 (this one)" in page
    assert url("executions_taskexecution_change", first.pk) in page  # the lineage links the first attempt
    first_page = admin_client.get(url("executions_taskexecution_change", first.pk)).content.decode()
    assert 'class="console-pre console-logs"' in first_page
    assert "boom &lt;oops&gt;" in first_page  # logs are escaped
    assert '"source": "a"' in html.unescape(first_page) and '"n": [\n    1,' in html.unescape(first_page)
    assert response.context["has_change_permission"] is False  # history is read-only


def test_history_cannot_be_added_or_deleted(admin_client, run):
    execution = run(status="success")
    assert admin_client.get(url("executions_taskexecution_add")).status_code == 403
    assert admin_client.get(url("executions_taskexecution_delete", execution.pk)).status_code == 403


def test_stop_action_cancels_running_runs_and_tells_their_executors(admin_client, run, stops,
                                                                    django_capture_on_commit_callbacks):
    running, finished = run(status="running", start_time=timezone.now()), run(status="success")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(changelist("execution"), {
            "action": "stop_selected", "_selected_action": [running.pk, finished.pk]}, follow=True)
    texts = " ".join(messages_of(response))
    assert "Stopped 1 task execution" in texts
    assert "cannot stop an execution whose status is 'success'" in texts
    running.refresh_from_db()
    assert running.status == "cancelled" and "stopped by operator" in running.logs
    assert stops == [running.pk]


def test_rerun_action_triggers_the_same_parameters_again(admin_client, make_task, run):
    task = make_task(parameters={"source": "a"})
    original = run(task, status="failed", parameters={"source": "b", "extra": True})
    admin_client.post(changelist("execution"), {"action": "rerun_selected", "_selected_action": [original.pk]})
    new = TaskExecution.objects.exclude(pk=original.pk).get()
    assert (new.task_id, new.trigger_type, new.status) == (task.pk, "manual", "pending")
    assert new.parameters == {"source": "b", "extra": True}


def test_stop_and_rerun_buttons(admin_client, run, stops, django_capture_on_commit_callbacks):
    running = run(status="running", start_time=timezone.now())
    page = admin_client.get(url("executions_taskexecution_change", running.pk)).content.decode()
    assert 'id="tool-stop"' in page and 'id="tool-rerun"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("executions_taskexecution_stop", running.pk))
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.status == "cancelled" and stops == [running.pk]
    assert 'id="tool-stop"' not in admin_client.get(url("executions_taskexecution_change", running.pk)).content.decode()

    response = admin_client.post(url("executions_taskexecution_rerun", running.pk))
    new = TaskExecution.objects.exclude(pk=running.pk).get()
    assert response["Location"] == url("executions_taskexecution_change", new.pk)


def test_stopping_a_finished_run_is_a_message_not_an_error(admin_client, run, stops):
    finished = run(status="success")
    response = admin_client.post(url("executions_taskexecution_stop", finished.pk), follow=True)
    assert response.status_code == 200
    assert any("cannot stop" in text for text in messages_of(response))
    assert stops == []


def test_rerun_of_a_deleted_task_is_refused_with_a_message(admin_client, make_task, run):
    execution = run(make_task(status="deleted"), status="success")
    response = admin_client.post(url("executions_taskexecution_rerun", execution.pk), follow=True)
    assert response.status_code == 200
    assert any("cannot trigger" in text for text in messages_of(response))
    assert TaskExecution.objects.count() == 1


def test_a_running_execution_page_follows_its_logs_live_and_a_final_one_does_not(admin_client, make_execution):
    running = make_execution(status="running", logs="first line", progress_percent=10, progress_step="loading")
    page = admin_client.get(url("executions_taskexecution_change", running.pk)).content.decode()
    assert 'id="live-tail"' in page and f'data-url="/api/v1/executions/{running.pk}/logs"' in page
    assert "console/live_tail.js" in page and "first line" in page and "loading" in page
    done = make_execution(status="success", logs="all done")
    page = admin_client.get(url("executions_taskexecution_change", done.pk)).content.decode()
    assert 'id="live-tail"' not in page and "all done" in page
