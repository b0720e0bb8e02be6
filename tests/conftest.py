"""Fixtures shared by the test suites: a JSON API client and persona factories built on the models.

Subdirectories may define fixtures of the same name (``tests/scheduling`` and ``tests/sdk`` do); theirs win
there.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from executions.models import TaskExecution
from executors.models import Executor
from tasks.models import Task

_MISSING = object()


class Api:
    """DRF's APIClient that sends JSON and answers ``(status, body)``.

    ``body`` is the decoded JSON for a JSON response, ``None`` for an empty one, and the text otherwise
    (so a test asserting a dict fails visibly on an HTML error page). ``last`` keeps the raw response.
    """

    def __init__(self) -> None:
        self.client = APIClient()
        self.last = None

    def request(self, method: str, path: str, body: Any = _MISSING, *, params: dict | None = None,
                raw: str | bytes | None = None, content_type: str = "application/json",
                **headers: str) -> tuple[int, Any]:
        if params:
            path = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"
        kwargs: dict[str, Any] = {}
        if raw is not None:
            kwargs = {"data": raw, "content_type": content_type}
        elif body is not _MISSING:
            kwargs = {"data": json.dumps(body), "content_type": content_type}
        response = self.client.generic(method.upper(), path, **kwargs, **headers)
        self.last = response
        return response.status_code, decode(response)

    def get(self, path: str, params: dict | None = None, **kwargs: Any) -> tuple[int, Any]:
        return self.request("GET", path, params=params, **kwargs)

    def post(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, body, **kwargs)


def decode(response) -> Any:
    content = response.content
    if not content:
        return None
    if response.get("Content-Type", "").startswith("application/json"):
        return json.loads(content)
    return content.decode("utf-8", "replace")


@pytest.fixture
def api(db) -> Api:
    return Api()


_serial = itertools.count(1)


@pytest.fixture
def make_task(db) -> Callable[..., Task]:
    def make(**overrides: Any) -> Task:
        n = next(_serial)
        fields: dict[str, Any] = {"name": f"task-{n}", "cron_expression": "0 */5 * * * *"}
        fields.update(overrides)
        return Task.objects.create(**fields)

    return make


@pytest.fixture
def make_executor(db) -> Callable[..., Executor]:
    def make(**overrides: Any) -> Executor:
        n = next(_serial)
        fields: dict[str, Any] = {
            "name": f"executor-{n}",
            "instance_id": f"instance-{n}",
            "base_url": f"http://127.0.0.1:{20000 + n}",
        }
        fields.update(overrides)
        fields.setdefault("health_check_url", fields["base_url"].rstrip("/") + "/health")
        return Executor.objects.create(**fields)

    return make


@pytest.fixture
def make_execution(db, make_task) -> Callable[..., TaskExecution]:
    """An execution row; ``task`` defaults to a new task. Each default ``scheduled_time`` is distinct (the
    fire key ``task, scheduled_time, trigger_type, retry_count`` is unique)."""

    # One base per test, stepped back by a serial: distinct by construction (now() - serial ms was not, for
    # two calls exactly one millisecond apart).
    base = timezone.now()

    def make(**overrides: Any) -> TaskExecution:
        if "task" not in overrides and "task_id" not in overrides:
            overrides["task"] = make_task()
        overrides.setdefault("scheduled_time", base - timedelta(milliseconds=next(_serial)))
        return TaskExecution.objects.create(**overrides)

    return make
