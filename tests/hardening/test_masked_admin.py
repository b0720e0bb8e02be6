"""The console never prints a stored secret: execution parameters and results, task parameters (editable and
read-only) and the trigger page show masked values, and saving a task form keeps the secrets it did not show."""

from __future__ import annotations

import html
import json

from scheduler_project.redaction import MASK
from tests.console.conftest import url
from tests.console.test_task_form import form_data

PARAMETERS = {"source": "orders", "db": {"host": "db.internal", "password": "hunter2"}, "api_key": "k-123"}


def page_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def test_execution_detail_masks_parameters_and_result(admin_client, make_execution):
    execution = make_execution(status="success", parameters=PARAMETERS,
                               result={"rows": 42, "session_token": "abc.def", "auth": {"Authorization": "Bearer x"}})
    page = page_of(admin_client.get(url("executions_taskexecution_change", execution.pk)))
    for secret in ("hunter2", "k-123", "abc.def", "Bearer x"):
        assert secret not in page
    assert f'"password": "{MASK}"' in page and f'"session_token": "{MASK}"' in page
    assert '"host": "db.internal"' in page and '"rows": 42' in page  # the rest is shown as it is


def test_task_change_form_shows_masks_and_saving_keeps_the_secrets(admin_client, make_task):
    task = make_task(name="sync-orders", cron_expression="*/10 * * * * *", parameters=PARAMETERS)
    page = page_of(admin_client.get(url("tasks_task_change", task.pk)))
    assert "hunter2" not in page and "k-123" not in page and MASK in page
    shown = json.loads(admin_client.get(url("tasks_task_change", task.pk)).context["adminform"]
                       .form["parameters"].value())
    # Sent back as shown, with one ordinary value and one secret edited.
    shown["source"] = "invoices"
    shown["api_key"] = "k-456"
    response = admin_client.post(url("tasks_task_change", task.pk), form_data(parameters=json.dumps(shown)))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.parameters == {"source": "invoices", "db": {"host": "db.internal", "password": "hunter2"},
                               "api_key": "k-456"}


def test_task_change_form_left_untouched_changes_nothing(admin_client, make_task):
    task = make_task(name="sync-orders", cron_expression="*/10 * * * * *", parameters=PARAMETERS)
    shown = admin_client.get(url("tasks_task_change", task.pk)).context["adminform"].form["parameters"].value()
    response = admin_client.post(url("tasks_task_change", task.pk), form_data(parameters=shown))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.parameters == PARAMETERS


def test_read_only_task_page_masks_parameters(admin_client, make_task):
    task = make_task(status="deleted", parameters=PARAMETERS)
    page = page_of(admin_client.get(url("tasks_task_change", task.pk)))
    assert "hunter2" not in page and "k-123" not in page
    assert f'"password": "{MASK}"' in page and '"source": "orders"' in page


def test_trigger_page_masks_the_task_parameters(admin_client, make_task):
    task = make_task(parameters=PARAMETERS)
    page = page_of(admin_client.get(url("tasks_task_trigger", task.pk)))
    assert "hunter2" not in page and f'"password": "{MASK}"' in page


def test_executor_change_form_masks_metadata(admin_client, make_executor):
    executor = make_executor(metadata={"zone": "eu-1", "registry_token": "t-789"})
    page = page_of(admin_client.get(url("executors_executor_change", executor.pk)))
    assert "t-789" not in page and MASK in page and "eu-1" in page
