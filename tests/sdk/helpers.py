"""Polling and dispatch helpers shared by the SDK tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from scheduler_sdk import Executor


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "") -> Any:
    """Polls ``predicate`` until it returns something truthy; fails the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s: {message or predicate}")
        time.sleep(0.01)


def dispatch(executor: Executor, execution_id: str, task_name: str, **fields: Any) -> requests.Response:
    """Sends the scheduler's /execute body to the executor over HTTP."""
    body = {"execution_id": execution_id, "task_id": "task-1", "task_name": task_name, "parameters": {},
            "timeout_seconds": 30, "retry_count": 0, "scheduled_time": "2024-01-01T12:00:00Z",
            "callback_url": f"http://127.0.0.1:1/api/v1/executions/{execution_id}/callback", **fields}
    return requests.post(f"{executor.url}/execute", json=body, timeout=5)


def stop_execution(executor: Executor, execution_id: str) -> requests.Response:
    return requests.post(f"{executor.url}/stop", json={"execution_id": execution_id}, timeout=5)
