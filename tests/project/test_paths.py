"""Every endpoint answers the same with and without a trailing slash, and never redirects (a redirected POST
loses its body)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from tasks.models import TaskExecutor

TASKS = "/api/v1/tasks"
EXECUTORS = "/api/v1/executors"
EXECUTIONS = "/api/v1/executions"


@dataclass
class World:
    ids: dict[str, str]

    def path(self, template: str) -> str:
        for name, value in self.ids.items():
            template = template.replace("{" + name + "}", value)
        return template


@pytest.fixture
def api(admin_or_executor_api):
    return admin_or_executor_api  # the executor's own POSTs come signed, as only those pass authentication


@pytest.fixture
def world(make_task, make_executor, make_execution) -> World:
    task = make_task()
    paused = make_task(status="paused")
    executor = make_executor()
    spare = make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    running = make_execution(task=task, executor=executor, status="running", start_time=timezone.now())
    return World({"task": task.pk, "paused": paused.pk, "executor": executor.pk, "spare": spare.pk,
                  "running": running.pk})


# (method, path template, body or None, expected status): every endpoint of spec 000 §4.1.
ENDPOINTS = [
    ("GET", TASKS, None, 200),
    ("POST", TASKS, {"name": "fresh", "cron_expression": "0 * * * * *"}, 201),
    ("GET", TASKS + "/{task}", None, 200),
    ("PUT", TASKS + "/{task}", {"max_retry": 1}, 200),
    ("DELETE", TASKS + "/{task}", None, 200),
    ("POST", TASKS + "/{task}/trigger", {"parameters": {"k": 1}}, 200),
    ("POST", TASKS + "/{task}/pause", None, 200),
    ("POST", TASKS + "/{paused}/resume", None, 200),
    ("GET", TASKS + "/{task}/stats", None, 200),
    ("GET", TASKS + "/{task}/executors", None, 200),
    ("POST", TASKS + "/{task}/executors", {"executor_id": "{spare}"}, 201),
    ("PUT", TASKS + "/{task}/executors/{executor}", {"weight": 3}, 200),
    ("DELETE", TASKS + "/{task}/executors/{executor}", None, 200),
    ("GET", EXECUTORS, None, 200),
    ("GET", EXECUTORS + "/{executor}", None, 200),
    ("POST", EXECUTORS + "/register", {"name": "n", "instance_id": "new", "base_url": "http://localhost:9"}, 201),
    ("PUT", EXECUTORS + "/{executor}", {"name": "renamed"}, 200),
    ("PUT", EXECUTORS + "/{executor}/status", {"status": "maintenance"}, 200),
    ("DELETE", EXECUTORS + "/{executor}", None, 200),
    ("GET", EXECUTIONS, None, 200),
    ("GET", EXECUTIONS + "/stats", None, 200),
    ("GET", EXECUTIONS + "/{running}", None, 200),
    ("POST", EXECUTIONS + "/{running}/callback", {"status": "success"}, 200),
    ("POST", EXECUTIONS + "/{running}/stop", None, 200),
    ("GET", "/api/v1/health", None, 200),
    ("GET", "/api/v1/scheduler/status", None, 200),
]


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "trailing-slash"])
@pytest.mark.parametrize(("method", "template", "body", "expected"), ENDPOINTS,
                         ids=[f"{m}-{t.replace('/api/v1', '')}" for m, t, _, _ in ENDPOINTS])
def test_endpoint_answers_with_and_without_trailing_slash_without_redirecting(api, world, method, template, body,
                                                                              expected, slash):
    path = world.path(template) + slash
    if body is None:
        status, response = api.request(method, path)
    else:
        filled = {key: world.path(value) if isinstance(value, str) else value for key, value in body.items()}
        status, response = api.request(method, path, filled)
    assert status == expected, response
    assert not api.last.has_header("Location")
    assert isinstance(response, dict) and response["code"] == expected
