"""API of live executions: executors stream log lines and progress while a run is in flight; clients tail
the logs. Writes go through ``executions.services``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from core.clock import utc_now
from executions import selectors, services
from executions.choices import ExecutionStatus
from executors.channel import ExecutorOnlyForPost, apply_signed_once
from scheduler_project.envelope import ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.fields import StrictSerializer
from scheduler_project.schema import envelope, errors

MAX_LINES_PER_APPEND = 1000
MAX_LINE_BYTES = 8 * 1024
DEFAULT_TAIL_LINES = 100
MAX_TAIL_LINES = 10_000

_EXECUTION_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="Execution id.")


class LogLineField(serializers.CharField):
    """One log line: a string (never a coerced number) of at most 8 KiB in UTF-8, storable everywhere."""

    default_error_messages = {
        "not_string": "must be a string",
        "too_long": f"must be at most {MAX_LINE_BYTES} bytes in UTF-8",
        "nul": "must not contain NUL (\\u0000) characters",
        "surrogate": "must be valid Unicode text (found a lone surrogate)",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_string")
        if "\x00" in data:
            self.fail("nul")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            self.fail("surrogate")
        if size > MAX_LINE_BYTES:
            self.fail("too_long")
        return data


class PercentField(serializers.FloatField):
    """0 to 100; a JSON number, not a numeric string."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class LogAppendSerializer(StrictSerializer):
    lines = serializers.ListField(child=LogLineField(), min_length=1, max_length=MAX_LINES_PER_APPEND)


class LogAppendResultSerializer(serializers.Serializer):
    appended = serializers.IntegerField()
    total_chars = serializers.IntegerField(help_text="Characters stored for the execution, marker included.")
    truncated = serializers.BooleanField(help_text="Whether earlier output was dropped to respect the cap.")


class LogTailSerializer(serializers.Serializer):
    execution_id = serializers.CharField()
    status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    lines = serializers.ListField(child=serializers.CharField())
    total_lines = serializers.IntegerField(help_text="Lines stored (after any truncation).")
    truncated = serializers.BooleanField(help_text="Whether earlier output was dropped to respect the cap.")
    progress_percent = serializers.FloatField(allow_null=True, help_text="The last progress reported, 0-100.")
    progress_step = serializers.CharField(allow_blank=True)
    progress_updated_at = serializers.DateTimeField(allow_null=True)


class ProgressSerializer(StrictSerializer):
    percent = PercentField(min_value=0, max_value=100)
    step = serializers.CharField(required=False, allow_blank=True, max_length=services.PROGRESS_STEP_MAX_CHARS,
                                 help_text="Left out: the step reported last is kept; empty: cleared.")


class ProgressStateSerializer(serializers.Serializer):
    execution_id = serializers.CharField(source="pk")
    status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    progress_percent = serializers.FloatField(allow_null=True)
    progress_step = serializers.CharField()
    progress_updated_at = serializers.DateTimeField(allow_null=True)


def _tail_size(params) -> int:
    raw = params.get("lines")
    if raw is None or raw == "":
        return DEFAULT_TAIL_LINES
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({"lines": [f"must be a positive integer, got {raw[:40]!r}"]}, code="invalid") from None
    if value < 1:
        raise ValidationError({"lines": ["must be 1 or greater"]}, code="min_value")
    return min(value, MAX_TAIL_LINES)


class _ExecutionView(APIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.EXECUTION_NOT_FOUND})


class ExecutionLogsView(ExecutorOnlyForPost, _ExecutionView):
    @extend_schema(
        parameters=[_EXECUTION_ID, OpenApiParameter(
            "lines", int, description=f"How many of the last lines (default {DEFAULT_TAIL_LINES}, "
            f"at most {MAX_TAIL_LINES})."
        )],
        responses={200: envelope("ExecutionLogTail", LogTailSerializer()), **errors(400, 404)},
        description="The end of an execution's logs, whatever its status, with its status and last progress "
        "(what the console's live tail polls while a run is pending or running).",
    )
    def get(self, request, pk: str):
        count = _tail_size(request.query_params)
        execution = services.get_execution(pk)
        tail = selectors.tail_logs(execution, lines=count)
        data = {"execution_id": execution.pk, "status": execution.status, "lines": tail.lines,
                "total_lines": tail.total_lines, "truncated": tail.truncated,
                "progress_percent": execution.progress_percent, "progress_step": execution.progress_step,
                "progress_updated_at": execution.progress_updated_at}
        return ok(LogTailSerializer(data).data)

    @extend_schema(
        parameters=[_EXECUTION_ID],
        request=LogAppendSerializer,
        responses={200: envelope("ExecutionLogAppended", LogAppendResultSerializer()),
                   **errors(400, 401, 404, 409)},
        description=f"Appends 1 to {MAX_LINES_PER_APPEND} lines (each at most {MAX_LINE_BYTES} bytes) to a "
        "pending or running execution (30002 otherwise). The stored log keeps its tail within "
        "EXECUTION_LOG_MAX_CHARS. Signed by the executor the execution was dispatched to (401 otherwise).",
    )
    def post(self, request, pk: str):
        def apply():
            body = LogAppendSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            return services.append_logs(execution_id=pk, lines=body.validated_data["lines"], now=utc_now())

        result = apply_signed_once(request, apply)  # the nonce and the lines commit together
        return ok(LogAppendResultSerializer(result).data)


class ExecutionProgressView(ExecutorOnlyForPost, _ExecutionView):
    @extend_schema(
        parameters=[_EXECUTION_ID],
        request=ProgressSerializer,
        responses={200: envelope("ExecutionProgress", ProgressStateSerializer()), **errors(400, 401, 404, 409)},
        description="Records a pending or running execution's progress (30002 otherwise). Signed by the "
        "executor the execution was dispatched to (401 otherwise).",
    )
    def post(self, request, pk: str):
        def apply():
            body = ProgressSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            return services.report_progress(execution_id=pk, percent=data["percent"], step=data.get("step"),
                                        now=utc_now())

        execution = apply_signed_once(request, apply)  # the nonce and the progress commit together
        return ok(ProgressStateSerializer(execution).data)
