"""One error type for the domain, one handler that turns every failure into the spec's error body.

Error body (spec 000 §9.3): ``{code, message, error, details, timestamp, path}``. ``code`` is the
business code (§9.2) when one applies, otherwise the HTTP status; ``message`` is the spec's message for
that code; ``error`` says precisely what went wrong.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.clock import utc_now
from scheduler_project.redaction import MASK

logger = logging.getLogger(__name__)


class ErrorCode(IntEnum):
    INVALID_INPUT = 400  # a field's value breaks a rule only a service can check; no business code of its own
    CONFLICT = 409  # collides with the current state of a resource; no business code of its own
    NOT_FOUND = 404  # a resource without a business code of its own (calendars; alert channels, rules, incidents)
    TASK_NAME_EXISTS = 10001
    INVALID_CRON = 10002
    TASK_NOT_FOUND = 10003
    TASK_STATE_FORBIDS = 10004
    EXECUTOR_NOT_FOUND = 20001
    EXECUTOR_INSTANCE_EXISTS = 20002
    EXECUTOR_UNAVAILABLE = 20003
    EXECUTION_NOT_FOUND = 30001
    EXECUTION_STATE_FORBIDS = 30002
    MAINTENANCE = 40001
    DATABASE_UNAVAILABLE = 40002
    # Workflows (50001..): README "Workflows".
    WORKFLOW_NOT_FOUND = 50001
    WORKFLOW_NAME_EXISTS = 50002
    WORKFLOW_CYCLE = 50003
    WORKFLOW_TASK_UNAVAILABLE = 50004
    WORKFLOW_UNREACHABLE_NODE = 50005
    WORKFLOW_INVALID_GRAPH = 50006
    WORKFLOW_RUN_NOT_FOUND = 50007
    WORKFLOW_RUN_STATE_FORBIDS = 50008
    WORKFLOW_STATE_FORBIDS = 50009


_BUSINESS = {
    ErrorCode.INVALID_INPUT: (status.HTTP_400_BAD_REQUEST, "参数验证失败"),
    ErrorCode.CONFLICT: (status.HTTP_409_CONFLICT, "资源冲突"),
    ErrorCode.NOT_FOUND: (status.HTTP_404_NOT_FOUND, "资源不存在"),
    ErrorCode.TASK_NAME_EXISTS: (status.HTTP_409_CONFLICT, "任务名称已存在"),
    ErrorCode.INVALID_CRON: (status.HTTP_400_BAD_REQUEST, "Cron表达式格式错误"),
    ErrorCode.TASK_NOT_FOUND: (status.HTTP_404_NOT_FOUND, "任务不存在"),
    ErrorCode.TASK_STATE_FORBIDS: (status.HTTP_409_CONFLICT, "任务状态不允许此操作"),
    ErrorCode.EXECUTOR_NOT_FOUND: (status.HTTP_404_NOT_FOUND, "执行器不存在"),
    ErrorCode.EXECUTOR_INSTANCE_EXISTS: (status.HTTP_409_CONFLICT, "执行器实例ID已存在"),
    ErrorCode.EXECUTOR_UNAVAILABLE: (status.HTTP_422_UNPROCESSABLE_ENTITY, "执行器状态异常"),
    ErrorCode.EXECUTION_NOT_FOUND: (status.HTTP_404_NOT_FOUND, "执行记录不存在"),
    ErrorCode.EXECUTION_STATE_FORBIDS: (status.HTTP_409_CONFLICT, "执行状态不允许此操作"),
    ErrorCode.MAINTENANCE: (status.HTTP_503_SERVICE_UNAVAILABLE, "系统维护中"),
    ErrorCode.DATABASE_UNAVAILABLE: (status.HTTP_503_SERVICE_UNAVAILABLE, "数据库连接失败"),
    ErrorCode.WORKFLOW_NOT_FOUND: (status.HTTP_404_NOT_FOUND, "工作流不存在"),
    ErrorCode.WORKFLOW_NAME_EXISTS: (status.HTTP_409_CONFLICT, "工作流名称已存在"),
    ErrorCode.WORKFLOW_CYCLE: (status.HTTP_400_BAD_REQUEST, "工作流存在环"),
    ErrorCode.WORKFLOW_TASK_UNAVAILABLE: (status.HTTP_400_BAD_REQUEST, "工作流节点的任务不存在或已删除"),
    ErrorCode.WORKFLOW_UNREACHABLE_NODE: (status.HTTP_400_BAD_REQUEST, "工作流节点不可达"),
    ErrorCode.WORKFLOW_INVALID_GRAPH: (status.HTTP_400_BAD_REQUEST, "工作流结构无效"),
    ErrorCode.WORKFLOW_RUN_NOT_FOUND: (status.HTTP_404_NOT_FOUND, "工作流运行不存在"),
    ErrorCode.WORKFLOW_RUN_STATE_FORBIDS: (status.HTTP_409_CONFLICT, "工作流运行状态不允许此操作"),
    ErrorCode.WORKFLOW_STATE_FORBIDS: (status.HTTP_409_CONFLICT, "工作流状态不允许此操作"),
}

_GENERIC_MESSAGES = {
    400: "参数验证失败",
    401: "未授权",
    403: "禁止访问",
    404: "资源不存在",
    405: "请求方法不允许",
    406: "不支持的响应格式",
    409: "资源冲突",
    413: "请求体过大",
    415: "不支持的请求格式",
    422: "处理失败",
    429: "请求过于频繁",
    500: "服务器错误",
    503: "服务不可用",
}

# Validation failures that the spec gives a business code of their own.
VALIDATION_CODE_TO_BUSINESS = {"invalid_cron": ErrorCode.INVALID_CRON}


class DomainError(Exception):
    """A business rule refused the operation. Services raise it; the handler renders it."""

    def __init__(self, code: ErrorCode, error: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.details = details or {}

    @classmethod
    def invalid(cls, field: str, message: str, constraint: str) -> DomainError:
        """A field refused by a service's rule, rendered like a serializer's validation error (400)."""
        return cls(ErrorCode.INVALID_INPUT, f"{field}: {message}",
                   {"field": field, "constraint": constraint, "errors": {field: [message]}})

    @property
    def http_status(self) -> int:
        return _BUSINESS[self.code][0]

    @property
    def message(self) -> str:
        return _BUSINESS[self.code][1]


def _encodable(value: Any, depth: int = 0) -> Any:
    """``value`` with every string made UTF-8 encodable: error bodies echo client input, and a lone
    surrogate (``"\\ud800"`` in JSON) would otherwise make rendering the error itself fail."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(value) else value
    if depth > 40:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {_encodable(str(key), depth + 1): _encodable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item, depth + 1) for item in value]
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def error_body(*, http_status: int, code: int, error: str, details: dict | None, path: str, message: str | None = None):
    return {
        "code": code,
        "message": message or _GENERIC_MESSAGES.get(http_status, "请求失败"),
        "error": _encodable(error),
        "details": _encodable(details or {}),
        "timestamp": utc_now().isoformat().replace("+00:00", "Z"),
        "path": _encodable(path),
    }


def _first_error(detail: Any, prefix: str = "") -> tuple[str, str, str]:
    """The first (field path, message, code) in a nested DRF error detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            # Keys are field names, or list positions (ints, 0 included) for errors inside a list.
            field = str(key) if key != "non_field_errors" else ""
            return _first_error(value, f"{prefix}.{field}" if prefix and field else (field or prefix))
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], prefix)
    return prefix, str(detail), getattr(detail, "code", "invalid")


def _field_value(request, field: str) -> Any:
    if not field or request is None:
        return None
    key = field.split(".")[0]
    if key in getattr(request, "sensitive_fields", ()):  # a credential (an alert channel's URL): never echoed
        return MASK
    data = getattr(request, "_full_data", None)
    if isinstance(data, dict) and key in data:
        value = data[key]
    else:
        value = request.query_params.get(key)
    try:
        text = repr(value)
    except RecursionError:
        return "<nested too deeply to show>"
    return value if len(text) <= 200 else text[:200] + "…"


def _validation_body(exc: exceptions.ValidationError, request, path: str) -> tuple[int, dict]:
    field, message, constraint = _first_error(exc.detail)
    business = VALIDATION_CODE_TO_BUSINESS.get(constraint)
    http_status = _BUSINESS[business][0] if business else status.HTTP_400_BAD_REQUEST
    details = {
        "field": field,
        "value": _field_value(request, field),
        "constraint": constraint,
        "errors": exc.detail,
    }
    error = f"{field}: {message}" if field else message
    body = error_body(
        http_status=http_status,
        code=int(business) if business else http_status,
        error=error,
        details=details,
        path=path,
        message=_BUSINESS[business][1] if business else None,
    )
    return http_status, body


def _raised_by_parser(exc: BaseException) -> bool:
    """Whether the traceback passes through a DRF parser (the request body was being decoded)."""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "parse" and code.co_filename.replace("\\", "/").endswith("rest_framework/parsers.py"):
            return True
        tb = tb.tb_next
    return False


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, RecursionError) and _raised_by_parser(exc):
        # json.loads recurses once per nesting level: ``[[[[...]]]]`` thousands deep is malformed input.
        return exceptions.ParseError("JSON parse error - the document is nested too deeply")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        error = exceptions.APIException("request body exceeds the configured size limit")
        error.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        return error
    if isinstance(exc, exceptions.APIException):
        return exc
    return None


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every API error leaves through here, in the spec's shape."""
    request = context.get("request")
    path = request.path if request is not None else ""
    if isinstance(exc, DomainError):
        if exc.code == ErrorCode.INVALID_INPUT:
            exc.details = {**exc.details, "value": _field_value(request, exc.details.get("field", ""))}
        body = error_body(
            http_status=exc.http_status, code=int(exc.code), error=exc.error, details=exc.details,
            path=path, message=exc.message,
        )
        return Response(body, status=exc.http_status)
    if isinstance(exc, exceptions.ValidationError):
        http_status, body = _validation_body(exc, request, path)
        return Response(body, status=http_status)
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.exception("database unavailable while serving %s", path)
        code = ErrorCode.DATABASE_UNAVAILABLE
        body = error_body(http_status=503, code=int(code), error="the database is unavailable", details={}, path=path,
                          message=_BUSINESS[code][1])
        return Response(body, status=503)
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        # Unexpected: still answer in the API's shape, and keep the traceback in the log, not the body.
        logger.exception("unhandled error serving %s", path, exc_info=exc)
        if isinstance(exc, DatabaseError):
            logger.error("database error: %s", exc)
        body = error_body(http_status=500, code=500, error="internal server error", details={}, path=path)
        return Response(body, status=500)
    detail = api_exc.detail
    error = str(detail if not isinstance(detail, (list, dict)) else _first_error(detail)[1])
    body = error_body(http_status=api_exc.status_code, code=api_exc.status_code, error=error, details={}, path=path)
    headers = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if getattr(api_exc, "wait", None):
        headers["Retry-After"] = str(int(api_exc.wait))
    return Response(body, status=api_exc.status_code, headers=headers)


_NOUN = {
    ErrorCode.TASK_NOT_FOUND: "task",
    ErrorCode.EXECUTOR_NOT_FOUND: "executor",
    ErrorCode.EXECUTION_NOT_FOUND: "execution",
    ErrorCode.WORKFLOW_NOT_FOUND: "workflow",
    ErrorCode.WORKFLOW_RUN_NOT_FOUND: "workflow run",
    ErrorCode.NOT_FOUND: "resource",
}


def reject_impossible_ids(kwargs: dict[str, Any], not_found: dict[str, ErrorCode]) -> None:
    """Ids taken from the URL that no row can have (a NUL character, which PostgreSQL cannot even
    compare) answer the resource's not-found error before they reach the database."""
    for name, code in not_found.items():
        value = kwargs.get(name)
        if isinstance(value, str) and ("\x00" in value or _has_surrogate(value)):
            raise DomainError(code, f"{_NOUN[code]} {value!r} does not exist")


def json_error_view(http_status: int, error: str):
    """Django-level handlers (unmatched URL, crash outside DRF) for API paths, in the same shape."""

    def view(request, exception=None):
        body = error_body(http_status=http_status, code=http_status, error=error, details={}, path=request.path)
        return JsonResponse(body, status=http_status, json_dumps_params={"ensure_ascii": False})

    return view
