"""Request bodies above DATA_UPLOAD_MAX_MEMORY_SIZE are refused with 413 in the API's error body, JSON
included (DRF >= 3.17.2), and nothing is written."""

from __future__ import annotations

import json

import pytest

from tasks.models import Task

LIMIT = 10_000


@pytest.fixture
def authenticated_api(api, settings):
    """An admin's client (``api`` sends an admin API key): the size limit, not a permission, refuses."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    return api


def task_body(blob_size: int) -> dict:
    return {"name": "big", "cron_expression": "*/10 * * * * *", "parameters": {"blob": "x" * blob_size}}


def test_oversize_json_body_gets_413_in_the_error_body_and_writes_nothing(authenticated_api):
    body = task_body(LIMIT)
    assert len(json.dumps(body)) > LIMIT
    status, error = authenticated_api.post("/api/v1/tasks", body)
    assert status == 413
    assert set(error) == {"code", "message", "error", "details", "timestamp", "path"}
    assert error["code"] == 413 and error["path"] == "/api/v1/tasks"
    assert not Task.objects.exists()


def test_body_just_under_the_limit_is_accepted(authenticated_api):
    body = task_body(LIMIT - 200)
    assert len(json.dumps(body)) <= LIMIT
    status, _ = authenticated_api.post("/api/v1/tasks", body)
    assert status == 201
    assert Task.objects.filter(name="big").exists()
