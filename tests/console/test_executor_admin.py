"""Executors in the console: status and health at a glance, running and assigned counts, status changes with
a reason, a manual health check, registration and deletion through the executor services."""

from __future__ import annotations

import pytest

import executors.admin as executor_admin
from executions.models import TaskExecution
from executors.models import Executor
from tasks.models import TaskExecutor
from tests.console.conftest import changelist, messages_of, url


def act(admin_client, action: str, executors, **extra):
    data = {"action": action, "_selected_action": [executor.pk for executor in executors], **extra}
    return admin_client.post(changelist("executor"), data, follow=True)


def form_data(**overrides) -> dict:
    data = {"name": "reports", "instance_id": "reports-1", "base_url": "http://127.0.0.1:9090",
            "health_check_url": "", "status": "online", "status_reason": "", "metadata": "{}"}
    data.update(overrides)
    return data


def test_list_shows_status_health_running_and_assigned_counts(admin_client, make_executor, make_task, run):
    busy = make_executor(name="busy", health_check_failures=2, is_healthy=False)
    make_executor(name="idle", status="maintenance", status_reason="disk swap")
    for _ in range(3):
        TaskExecutor.objects.create(task=make_task(), executor=busy)
    run(executor=busy, status="running")
    run(executor=busy, status="running")
    run(executor=busy, status="success")
    response = admin_client.get(changelist("executor"))
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert (rows["busy"].running_count, rows["busy"].assigned_count) == (2, 3)
    assert (rows["idle"].running_count, rows["idle"].assigned_count) == (0, 0)
    page = response.content.decode()
    assert "badge-unhealthy" in page and "2 failed checks" in page and "never checked" in page
    assert "badge-maintenance" in page and "disk swap" in page


def test_list_queries_do_not_grow_with_rows(make_executor, make_task, run, queries_for):
    make_executor()
    few = queries_for(changelist("executor"))
    for _ in range(25):
        executor = make_executor()
        TaskExecutor.objects.create(task=make_task(), executor=executor)
        run(executor=executor, status="running")
    assert queries_for(changelist("executor")) == few
    assert few <= 8, few


def test_set_online_needs_no_reason(admin_client, make_executor):
    executor = make_executor(status="offline", status_reason="was down")
    response = act(admin_client, "set_online", [executor])
    assert any("Set online: 1 executor" in text for text in messages_of(response))
    executor.refresh_from_db()
    assert (executor.status, executor.status_reason) == ("online", "")


@pytest.mark.parametrize(("action", "status"), [("set_offline", "offline"), ("set_maintenance", "maintenance")])
def test_offline_and_maintenance_ask_for_a_reason_first(admin_client, make_executor, action, status):
    first, second = make_executor(), make_executor()
    page = act(admin_client, action, [first, second])
    assert page.templates[0].name == "admin/console/action_form.html"
    assert 'name="reason"' in page.content.decode()
    first.refresh_from_db()
    assert first.status == "online"  # nothing changed yet

    act(admin_client, action, [first, second], apply="1", reason="kernel upgrade")
    assert {(e.status, e.status_reason) for e in Executor.objects.all()} == {(status, "kernel upgrade")}


def test_check_health_now_probes_and_records_like_the_scheduler(admin_client, make_executor, monkeypatch):
    up = make_executor(name="up")
    down = make_executor(name="down", health_check_failures=2)
    probed = []

    def fake_probe(executor, timeout):
        probed.append(executor.health_check_url)
        return "down" not in executor.health_check_url

    monkeypatch.setattr(executor_admin, "probe", fake_probe)
    down.health_check_url = "http://down.invalid/health"
    down.save()
    response = act(admin_client, "check_health_now", [up, down])
    assert sorted(probed) == sorted([up.health_check_url, "http://down.invalid/health"])
    texts = " ".join(messages_of(response))
    assert "answered — healthy" in texts and "3 failures in a row) — unhealthy" in texts
    down.refresh_from_db()
    up.refresh_from_db()
    assert (down.is_healthy, down.health_check_failures) == (False, 3)
    assert up.last_health_check is not None and up.is_healthy


def test_check_health_button_on_the_executor_page(admin_client, make_executor, monkeypatch):
    executor = make_executor()
    monkeypatch.setattr(executor_admin, "probe", lambda executor, timeout: False)
    response = admin_client.post(url("executors_executor_check_health", executor.pk))
    assert response.status_code == 302
    executor.refresh_from_db()
    assert executor.health_check_failures == 1 and executor.last_health_check is not None
    assert admin_client.get(url("executors_executor_check_health", executor.pk)).status_code == 405


def test_add_registers_through_the_service(admin_client):
    response = admin_client.post(url("executors_executor_add"),
                                 form_data(status="maintenance", status_reason="not ready", metadata='{"zone": "b"}'))
    assert response.status_code == 302
    executor = Executor.objects.get(instance_id="reports-1")
    assert executor.health_check_url == "http://127.0.0.1:9090/health"  # the service's default
    assert (executor.status, executor.status_reason, executor.metadata) == ("maintenance", "not ready",
                                                                            {"zone": "b"})


@pytest.mark.parametrize(("field", "value"), [("base_url", "ftp://x"), ("base_url", "not a url"),
                                              ("health_check_url", "http://bad host/health"),
                                              ("base_url", "http://169.254.169.254"),
                                              ("health_check_url", "http://[fd00:ec2::254]/health"),
                                              ("metadata", "[1, 2]")])
def test_invalid_values_are_form_errors(admin_client, field, value):
    response = admin_client.post(url("executors_executor_add"), form_data(**{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    assert not Executor.objects.exists()


def test_a_taken_instance_id_is_a_form_error(admin_client, make_executor):
    make_executor(instance_id="reports-1")
    response = admin_client.post(url("executors_executor_add"), form_data())
    assert response.status_code == 200 and response.context["adminform"].form.errors["instance_id"]


def test_change_updates_identity_and_status(admin_client, make_executor):
    executor = make_executor(base_url="http://127.0.0.1:7000", health_check_url="http://127.0.0.1:7000/health")
    response = admin_client.post(url("executors_executor_change", executor.pk), form_data(
        name=executor.name, base_url="http://127.0.0.1:7001", health_check_url="", status="offline",
        status_reason="moved"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    executor.refresh_from_db()
    assert executor.base_url == "http://127.0.0.1:7001"
    assert executor.health_check_url == "http://127.0.0.1:7001/health"
    assert (executor.status, executor.status_reason) == ("offline", "moved")


def test_delete_goes_through_the_service_and_keeps_history(admin_client, make_executor, make_task, run):
    executor = make_executor()
    TaskExecutor.objects.create(task=make_task(), executor=executor)
    execution = run(executor=executor, status="success")
    response = admin_client.post(url("executors_executor_delete", executor.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Executor.objects.exists() and not TaskExecutor.objects.exists()
    execution.refresh_from_db()
    assert execution.executor_id is None and TaskExecution.objects.count() == 1


def test_bulk_delete_action(admin_client, make_executor):
    executors = [make_executor(), make_executor()]
    act(admin_client, "delete_selected", executors, post="yes")
    assert not Executor.objects.exists()


def test_filter_by_health_and_status(admin_client, make_executor):
    make_executor(name="ok")
    make_executor(name="sick", is_healthy=False)
    make_executor(name="parked", status="maintenance")
    names = lambda query: {e.name for e in admin_client.get(changelist("executor") + query).context["cl"].result_list}  # noqa: E731
    assert names("?health=unhealthy") == {"sick"}
    assert names("?health=healthy&status__exact=online") == {"ok"}
    assert names("?q=park") == {"parked"}


def test_the_signing_secret_is_masked_on_the_page_and_absent_from_the_list(admin_client, make_executor):
    executor = make_executor()
    page = admin_client.get(url("executors_executor_change", executor.pk)).content.decode()
    assert f"{executor.secret[:4]}…" in page and executor.secret not in page
    assert executor.secret not in admin_client.get(changelist("executor")).content.decode()


def test_rotate_secret_action_replaces_each_secret(admin_client, make_executor):
    first, second = make_executor(), make_executor()
    old = {first.pk: first.secret, second.pk: second.secret}
    response = act(admin_client, "rotate_secret", [first, second])
    assert "Rotated the signing secret of 2 executors" in " ".join(messages_of(response))
    for executor in Executor.objects.filter(pk__in=old):
        assert executor.secret and executor.secret != old[executor.pk]

