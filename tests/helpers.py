"""Assertions shared by the API tests: envelopes, error bodies, and the spec's field sets (spec 000 §3, §4.2, §9)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
ERROR_KEYS = {"code", "message", "error", "details", "timestamp", "path"}

# Spec 000 §9.2: business code -> (HTTP status, message).
BUSINESS = {
    10001: (409, "任务名称已存在"),
    10002: (400, "Cron表达式格式错误"),
    10003: (404, "任务不存在"),
    10004: (409, "任务状态不允许此操作"),
    20001: (404, "执行器不存在"),
    20002: (409, "执行器实例ID已存在"),
    30001: (404, "执行记录不存在"),
    30002: (409, "执行状态不允许此操作"),
    # Workflows (README "Workflows"), this project's own range.
    50001: (404, "工作流不存在"),
    50002: (409, "工作流名称已存在"),
    50003: (400, "工作流存在环"),
    50004: (400, "工作流节点的任务不存在或已删除"),
    50005: (400, "工作流节点不可达"),
    50006: (400, "工作流结构无效"),
    50007: (404, "工作流运行不存在"),
    50008: (409, "工作流运行状态不允许此操作"),
    50009: (409, "工作流状态不允许此操作"),
}

# Spec 000 §3.2 response models (the keys every representation carries).
TASK_KEYS = {
    "id", "name", "cron_expression", "parameters", "execution_mode", "load_balance_strategy", "max_retry",
    "timeout_seconds", "status", "created_at", "updated_at",
}
EXECUTOR_KEYS = {
    "id", "name", "instance_id", "base_url", "health_check_url", "status", "is_healthy", "last_health_check",
    "health_check_failures", "metadata", "created_at", "updated_at",
}
EXECUTION_KEYS = {
    "id", "task_id", "executor_id", "scheduled_time", "start_time", "end_time", "status", "result", "logs",
    "retry_count", "created_at",
}
ASSIGNMENT_KEYS = {"id", "task_id", "executor_id", "priority", "weight", "created_at"}
PAGE_KEYS = {"total", "page", "page_size", "total_pages", "total_is_exact"}

EXECUTION_MODES = {"sequential", "parallel", "skip"}
STRATEGIES = {"round_robin", "weighted_round_robin", "random", "sticky", "least_loaded"}
TASK_STATUSES = {"active", "paused", "deleted"}
EXECUTOR_STATUSES = {"online", "offline", "maintenance"}
EXECUTION_STATUSES = {"pending", "running", "success", "failed", "timeout", "skipped", "cancelled"}


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_iso_z(value: Any) -> bool:
    return isinstance(value, str) and ISO_Z.match(value) is not None


def parse_iso(value: str) -> datetime:
    assert is_iso_z(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def same_instant(value: str | None, expected: datetime | None) -> bool:
    if value is None or expected is None:
        return value is None and expected is None
    return parse_iso(value) == expected


def assert_ok(status: int, body: Any, *, http_status: int = 200, message: str = "success") -> Any:
    """A success envelope ``{code, message[, data]}``; returns ``data`` (or None when absent)."""
    assert status == http_status, body
    assert isinstance(body, dict), body
    assert body["code"] == http_status
    assert body["message"] == message
    return body.get("data")


def assert_error(status: int, body: Any, http_status: int, code: int | None = None, *, path: str | None = None) -> dict:
    """The spec's error body (§9.3): exactly these six keys, typed, with the business code when one applies."""
    assert status == http_status, body
    assert isinstance(body, dict), body
    assert set(body) == ERROR_KEYS, body
    expected_code = code if code is not None else http_status
    assert body["code"] == expected_code, body
    if expected_code in BUSINESS:
        assert BUSINESS[expected_code] == (http_status, body["message"]), body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    assert is_iso_z(body["timestamp"]), body["timestamp"]
    assert isinstance(body["path"], str) and body["path"].startswith("/api/")
    if path is not None:
        assert body["path"] == path
    return body


def assert_client_error(status: int, body: Any) -> dict:
    """Any 4xx in the error shape (never a 500, never HTML)."""
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict), body
    code = body.get("code")
    assert code == status or (code in BUSINESS and BUSINESS[code][0] == status), body
    return assert_error(status, body, status, code)


def assert_task_shape(task: dict) -> None:
    assert TASK_KEYS <= set(task), set(task) ^ TASK_KEYS
    assert isinstance(task["id"], str) and task["id"]
    assert isinstance(task["name"], str)
    assert isinstance(task["cron_expression"], str)
    assert isinstance(task["parameters"], dict)
    assert task["execution_mode"] in EXECUTION_MODES
    assert task["load_balance_strategy"] in STRATEGIES
    assert is_int(task["max_retry"]) and is_int(task["timeout_seconds"])
    assert task["status"] in TASK_STATUSES
    assert is_iso_z(task["created_at"]) and is_iso_z(task["updated_at"])


def assert_executor_shape(executor: dict) -> None:
    assert EXECUTOR_KEYS <= set(executor), set(executor) ^ EXECUTOR_KEYS
    for key in ("id", "name", "instance_id", "base_url", "health_check_url"):
        assert isinstance(executor[key], str), key
    assert executor["status"] in EXECUTOR_STATUSES
    assert isinstance(executor["is_healthy"], bool)
    assert executor["last_health_check"] is None or is_iso_z(executor["last_health_check"])
    assert is_int(executor["health_check_failures"])
    assert isinstance(executor["metadata"], dict)
    assert is_iso_z(executor["created_at"]) and is_iso_z(executor["updated_at"])


def assert_execution_shape(execution: dict) -> None:
    assert EXECUTION_KEYS <= set(execution), set(execution) ^ EXECUTION_KEYS
    assert isinstance(execution["id"], str) and isinstance(execution["task_id"], str)
    assert execution["executor_id"] is None or isinstance(execution["executor_id"], str)
    assert is_iso_z(execution["scheduled_time"]) and is_iso_z(execution["created_at"])
    for key in ("start_time", "end_time"):
        assert execution[key] is None or is_iso_z(execution[key]), key
    assert execution["status"] in EXECUTION_STATUSES
    assert execution["result"] is None or isinstance(execution["result"], dict)
    assert isinstance(execution["logs"], str)
    assert is_int(execution["retry_count"])


def assert_assignment_shape(assignment: dict) -> None:
    assert ASSIGNMENT_KEYS <= set(assignment), set(assignment) ^ ASSIGNMENT_KEYS
    assert isinstance(assignment["id"], str)
    assert isinstance(assignment["task_id"], str) and isinstance(assignment["executor_id"], str)
    assert is_int(assignment["priority"]) and is_int(assignment["weight"])
    assert is_iso_z(assignment["created_at"])
