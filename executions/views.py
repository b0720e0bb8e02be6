from datetime import datetime, tzinfo

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError

from core.clock import utc_now
from executions import services
from executions.filters import ExecutionFilter
from executions.models import TaskExecution
from executions.selectors import broadcast_runs_of, execution_page, execution_stats, fire_key_of
from executions.serializers import (
    CallbackSerializer,
    ExecutionDetailSerializer,
    ExecutionSerializer,
    ExecutionStatsSerializer,
    ExecutionStatusChangeSerializer,
)
from executors.channel import EXECUTOR_AUTHENTICATION, EXECUTOR_PERMISSIONS, apply_signed_once
from scheduler_project.envelope import ok
from scheduler_project.errors import ErrorCode, reject_impossible_ids
from scheduler_project.fields import EmptyBodySerializer, as_shown, optional_body
from scheduler_project.pagination import COUNT_AHEAD, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, page_envelope

_FILTERS = [
    OpenApiParameter("task_id", str, description="Only this task's executions."),
    OpenApiParameter("start_time", OpenApiTypes.DATETIME, description="scheduled_time at or after (ISO 8601)."),
    OpenApiParameter("end_time", OpenApiTypes.DATETIME, description="scheduled_time at or before (ISO 8601)."),
    OpenApiParameter("executor_id", str, description="Only executions run by this executor."),
    OpenApiParameter("status", str, description="Comma-separated statuses, e.g. success,failed."),
    OpenApiParameter("parent_id", str, description="Only the shards of this broadcast run."),
    OpenApiParameter("level", str, enum=["run", "shard"],
                     description="run: no broadcast shards (each fire once); shard: broadcast shards only."),
]


def _iso(value: datetime | None, zone: tzinfo) -> str | None:
    """DRF's DateTimeField output (settings DATETIME_FORMAT "iso-8601"): in ``zone``, UTC written as Z."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def listed_execution(row: dict, zone: tzinfo, parents: dict | None = None) -> dict:
    """What ExecutionSerializer makes of the execution whose LISTED_COLUMNS are ``row``, key for key, at a
    fraction of the cost: DRF's fields were over a quarter of a list page's CPU (issue #8). The schema still
    comes from ExecutionSerializer; tests/executions/test_executions.py holds the two outputs equal.
    ``parents``: the broadcast runs of the page's shards (``broadcast_runs_of``)."""
    executor = None
    if row["executor_id"] is not None:
        executor = {"id": row["executor_id"], "name": row["executor__name"], "status": row["executor__status"]}
    return {
        "id": row["id"], "task_id": row["task_id"], "executor_id": row["executor_id"],
        "scheduled_time": _iso(row["scheduled_time"], zone), "start_time": _iso(row["start_time"], zone),
        "end_time": _iso(row["end_time"], zone), "status": row["status"], "result": as_shown(row["result"]),
        "logs": row["logs"], "retry_count": row["retry_count"], "created_at": _iso(row["created_at"], zone),
        "trigger_type": row["trigger_type"], "parameters": as_shown(row["parameters"]),
        "duration_ms": row["duration_ms"], "retry_of_id": row["retry_of_id"],
        "progress_percent": None if row["progress_percent"] is None else float(row["progress_percent"]),
        "progress_step": row["progress_step"], "progress_updated_at": _iso(row["progress_updated_at"], zone),
        "workflow_run_id": row["workflow_run_id"],
        "parent_id": (parents or {}).get(fire_key_of(row)) if row["shard"] else None,
        "shard_index": row["shard"] - 1 if row["shard"] else None,
        "shard_total": row["shard_total"],
        "task": {"id": row["task_id"], "name": row["task__name"], "status": row["task__status"]},
        "executor": executor,
    }


def _valid_filters(request) -> ExecutionFilter:
    filterset = ExecutionFilter(request.query_params, queryset=TaskExecution.objects.all(), request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset


class ExecutionViewSet(viewsets.ViewSet):
    """Spec 000 §7: execution history, results reported by executors, and stops."""

    lookup_value_regex = "[^/]+"
    operator_actions = {"stop"}  # reads need viewer, other writes admin (accounts.roles)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_impossible_ids(kwargs, {"pk": ErrorCode.EXECUTION_NOT_FOUND})

    @extend_schema(
        parameters=[*_FILTERS, *PAGING_PARAMETERS],
        responses={200: page_envelope("ExecutionList", ExecutionSerializer),
                   **errors(400)},
        description="Newest scheduled first. `status` takes a comma-separated list; start_time/end_time "
        f"(ISO 8601) bound scheduled_time. `total` is exact up to {COUNT_AHEAD} rows past the page.",
    )
    def list(self, request):
        page = execution_page(_valid_filters(request).qs, parse_page_request(request.query_params))
        zone = timezone.get_current_timezone()
        parents = broadcast_runs_of(page.items)
        return ok({"data": [listed_execution(row, zone, parents) for row in page.items], **page.meta()})

    @extend_schema(parameters=_FILTERS,
                   responses={200: envelope("ExecutionStats", ExecutionStatsSerializer()), **errors(400)},
                   description="Without start_time, the figures cover the 24 hours before end_time (or now); "
                   "the window is echoed in start_time/end_time.")
    @action(detail=False, methods=["get"])
    def stats(self, request):
        filters = _valid_filters(request)
        window = {name: filters.form.cleaned_data.get(name) for name in ("start_time", "end_time")}
        return ok(ExecutionStatsSerializer(execution_stats(filters.qs, now=utc_now(), **window)).data)

    @extend_schema(responses={200: envelope("ExecutionDetail", ExecutionDetailSerializer()), **errors(404)})
    def retrieve(self, request, pk=None):
        return ok(ExecutionDetailSerializer(services.get_execution(pk)).data)

    @extend_schema(request=CallbackSerializer,
                   responses={200: envelope("CallbackApplied"), **errors(400, 401, 404, 409)},
                   description="Applies an executor's result once; a report for a run already final answers 30002. "
                   "Only the executor the execution was dispatched to may call it, signing the request with its "
                   "secret (401 otherwise).")
    @action(detail=True, methods=["post"], authentication_classes=EXECUTOR_AUTHENTICATION,
            permission_classes=EXECUTOR_PERMISSIONS)
    def callback(self, request, pk=None):
        def apply() -> None:
            body = CallbackSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            services.apply_callback(
                execution_id=pk, status=data["status"], result=data.get("result"), logs=data.get("logs"),
                end_time=data.get("end_time"), now=utc_now(),
            )

        apply_signed_once(request, apply)  # the nonce and the result commit together
        return ok(message="执行回调处理成功")

    @extend_schema(request=None,
                   responses={200: envelope("ExecutionStopped", ExecutionStatusChangeSerializer()), **errors(404, 409)})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        optional_body(EmptyBodySerializer, request)
        outcome = services.stop_execution(execution_id=pk, now=utc_now())
        execution = outcome.execution
        change = {
            "execution_id": execution.pk, "previous_status": outcome.previous_status,
            "current_status": execution.status, "stopped_at": execution.end_time,
        }
        return ok(ExecutionStatusChangeSerializer(change).data, message="停止指令已发送")
