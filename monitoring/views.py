"""The cluster endpoints: health, scheduler status, the executions running now and the scheduler's metrics
(JSON, under /api/v1). The Prometheus exposition (``/metrics``) is ``monitoring.prometheus.metrics_view``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from core.clock import utc_now
from monitoring.selectors import cluster_status, health, running_executions, running_seconds, scheduler_metrics
from monitoring.serializers import (
    HealthSerializer,
    RunningExecutionSerializer,
    SchedulerMetricsSerializer,
    SchedulerStatusSerializer,
)
from scheduler_project.envelope import ok
from scheduler_project.pagination import paginate, parse_page_request
from scheduler_project.schema import PAGING_PARAMETERS, envelope, errors, page_envelope


class HealthView(APIView):
    # Public, for load balancers and probes: no credentials needed, any sent are ignored.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses={200: envelope("Health", HealthSerializer()), **errors(503)},
                   description="Spec 000 §8.1. Answers 503 (40002) when the database is unreachable.")
    def get(self, request):
        return ok(HealthSerializer(health(utc_now())).data)


class SchedulerStatusView(APIView):
    @extend_schema(responses={200: envelope("SchedulerStatus", SchedulerStatusSerializer())})
    def get(self, request):
        return ok(SchedulerStatusSerializer(cluster_status(utc_now())).data)


class RunningExecutionsView(APIView):
    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
        ],
        responses={200: page_envelope("RunningExecutionList", RunningExecutionSerializer), **errors(400)},
        description="Executions running now, longest-running first, with their progress.",
    )
    def get(self, request):
        now = utc_now()
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
        return ok(SchedulerMetricsSerializer(scheduler_metrics(utc_now())).data)
