"""Polling and dispatch helpers shared by the SDK tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from scheduler_sdk import Executor
from scheduler_sdk.credentials import ExecutorCredentials
from scheduler_sdk.signing import signature_headers
from tests.sdk.fake_scheduler import EXECUTOR_ID, SECRET


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


def signed_request(base_url: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   secret: str = SECRET, **signing: Any) -> requests.Response:
    """Calls an executor as the scheduler does: signed with the secret the fake scheduler handed out.
    ``raw`` sends those bytes instead of ``body`` as JSON."""
    if raw is None:
        raw = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **signature_headers(secret, method, path, raw, **signing)}
    return requests.request(method, f"{base_url}{path}", data=raw or None, headers=headers, timeout=5)


def signed_call(executor: Executor, method: str, path: str, body: Any = None, **options: Any) -> requests.Response:
    return signed_request(executor.url, method, path, body, **options)


def dispatch(executor: Executor, execution_id: str, task_name: str, **fields: Any) -> requests.Response:
    """Sends the scheduler's signed /execute body to the executor over HTTP."""
    body = {"execution_id": execution_id, "task_id": "task-1", "task_name": task_name, "parameters": {},
            "timeout_seconds": 30, "retry_count": 0, "scheduled_time": "2024-01-01T12:00:00Z",
            "callback_url": f"http://127.0.0.1:1/api/v1/executions/{execution_id}/callback", **fields}
    return signed_call(executor, "POST", "/execute", body)


def stop_execution(executor: Executor, execution_id: str) -> requests.Response:
    return signed_call(executor, "POST", "/stop", {"execution_id": execution_id})


def registered_credentials() -> ExecutorCredentials:
    """An executor's credentials as after registering with the fake scheduler (a client ``auth=``)."""
    credentials = ExecutorCredentials(registration_key="")
    credentials.accept_registration({"id": EXECUTOR_ID, "secret": SECRET})
    return credentials
