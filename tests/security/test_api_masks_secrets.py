"""Finding 6: viewers read secrets through the API (task parameters `password`, `api_token`, execution
results `access_key`, executor metadata `secret_token`) that the console masks. The API now masks the same
keys for every role below admin; admins read the values."""

from __future__ import annotations

import json

import pytest

from scheduler_project.redaction import MASK

SECRETS = ("pa55word", "tok-123", "AKIA-SECRET", "exec-token")


@pytest.fixture
def stored(make_task, make_executor, make_execution):
    task = make_task(parameters={"password": "pa55word", "api_token": "tok-123", "rows": 10})
    executor = make_executor(metadata={"secret_token": "exec-token", "zone": "a"})
    execution = make_execution(task=task, executor=executor, status="success", parameters={"password": "pa55word"},
                               result={"access_key": "AKIA-SECRET", "rows": 10})
    return {"task": task.pk, "executor": executor.pk, "execution": execution.pk}


def paths(ids: dict) -> list[str]:
    return ["/api/v1/tasks", f"/api/v1/tasks/{ids['task']}", "/api/v1/executions",
            f"/api/v1/executions/{ids['execution']}", "/api/v1/executors", f"/api/v1/executors/{ids['executor']}",
            "/api/v1/executors?include_tasks=true"]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_roles_below_admin_read_masked_secrets(api_as, stored, role):
    client = api_as(role)
    for path in paths(stored):
        status, body = client.get(path)
        text = json.dumps(body, ensure_ascii=False)
        assert status == 200, (path, body)
        assert not any(secret in text for secret in SECRETS), path
    task = client.get(f"/api/v1/tasks/{stored['task']}")[1]["data"]
    assert task["parameters"] == {"password": MASK, "api_token": MASK, "rows": 10}
    execution = client.get(f"/api/v1/executions/{stored['execution']}")[1]["data"]
    assert execution["result"] == {"access_key": MASK, "rows": 10}
    assert client.get(f"/api/v1/executors/{stored['executor']}")[1]["data"]["metadata"]["zone"] == "a"


def test_admins_read_the_values_and_a_viewer_after_them_does_not(api, api_as, stored):
    assert api.get(f"/api/v1/tasks/{stored['task']}")[1]["data"]["parameters"]["password"] == "pa55word"
    execution = api.get(f"/api/v1/executions/{stored['execution']}")[1]["data"]
    assert execution["result"]["access_key"] == "AKIA-SECRET"
    # Same thread, next request: nothing of the admin's view carries over.
    assert api_as("viewer").get(f"/api/v1/tasks/{stored['task']}")[1]["data"]["parameters"]["password"] == MASK
