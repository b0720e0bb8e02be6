"""What the cluster is doing now: the running executions and the scheduler's metrics (JSON, under /api/v1).
The Prometheus exposition (``/metrics``) is ``scheduling.metrics.metrics_view``."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from scheduler_project.envelope import ok
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, page_envelope
from scheduling.observability import running_executions, running_seconds, scheduler_metrics


class _TaskRef(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class _ExecutorRef(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    instance_id = serializers.CharField()


class RunningExecutionSerializer(serializers.Serializer):
    id = serializers.CharField()
    task = _TaskRef()
    executor = _ExecutorRef(allow_null=True)
    scheduled_time = serializers.DateTimeField()
    start_time = serializers.DateTimeField(allow_null=True)
    running_seconds = serializers.FloatField(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True, help_text="When the run times out (before the grace).")
    retry_count = serializers.IntegerField()
    progress_percent = serializers.FloatField(allow_null=True)
    progress_step = serializers.CharField()
    progress_updated_at = serializers.DateTimeField(allow_null=True)


class _Memory(serializers.Serializer):
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    available_bytes = serializers.IntegerField()
    percent = serializers.FloatField()


class _Disk(serializers.Serializer):
    path = serializers.CharField()
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    free_bytes = serializers.IntegerField()
    percent = serializers.FloatField()


class _Node(serializers.Serializer):
    hostname = serializers.CharField()
    cpu_percent = serializers.FloatField(help_text="Machine-wide CPU use since the previous request.")
    cpu_count = serializers.IntegerField()
    memory = _Memory()
    disk = _Disk()


class _CompletedToday(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    timeout = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class _ExecutionFigures(serializers.Serializer):
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    completed_today = _CompletedToday(help_text="Reached a final status today (UTC day), per status.")


class _Leader(serializers.Serializer):
    instance_id = serializers.CharField()
    host = serializers.CharField()
    since = serializers.DateTimeField()


class SchedulerMetricsSerializer(serializers.Serializer):
    node = _Node()
    executions = _ExecutionFigures()
    leader = _Leader(allow_null=True)
    timestamp = serializers.DateTimeField()


class RunningExecutionsView(APIView):
    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
        ],
        responses={200: page_envelope("RunningExecutionList", RunningExecutionSerializer), **errors(400)},
        description="Executions running now, longest-running first, with their progress.",
    )
    def get(self, request):
        now = timezone.now()
        page = paginate(running_executions(), parse_page_request(request.query_params))
        rows = []
        for execution in page.items:
            execution.running_seconds = running_seconds(execution, now)
            rows.append(execution)
        return ok({"data": RunningExecutionSerializer(rows, many=True).data, **page.meta()})


class SchedulerMetricsView(APIView):
    @extend_schema(
        responses={200: envelope("SchedulerMetrics", SchedulerMetricsSerializer()), **errors(503)},
        description="This node's CPU, memory and disk, the cluster's pending and running executions, those "
        "completed today (UTC), and the leader. Prometheus scrapes `/metrics` instead.",
    )
    def get(self, request):
        return ok(SchedulerMetricsSerializer(scheduler_metrics(timezone.now())).data)
