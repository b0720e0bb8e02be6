from django.contrib import admin
from django.urls import include, path, re_path
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts.views import TokenObtainView, TokenRefreshView
from alerts.views import ChannelViewSet, IncidentViewSet, NotificationViewSet, RuleViewSet
from executions.callback_views import ExecutionCallbacksView
from executions.lease_views import LeaseRenewalView
from executions.live_views import ExecutionLogsView, ExecutionProgressView
from executions.views import ExecutionViewSet
from executors.views import ExecutorShutdownView, ExecutorViewSet
from monitoring.prometheus import metrics_view
from monitoring.views import HealthView, RunningExecutionsView, SchedulerMetricsView, SchedulerStatusView
from scheduler_project.errors import json_error_view
from tasks.views import CalendarViewSet, TaskViewSet
from workflows.views import WorkflowRunViewSet, WorkflowViewSet

# An optional trailing slash. Written as a non-capturing group (not ``/?``) so that the OpenAPI schema,
# which simplifies each regex into a path, lists the spec's paths as written: ``/api/v1/tasks/{id}``.
OPTIONAL_SLASH = "(?:/)?"


class OptionalSlashRouter(SimpleRouter):
    """The spec writes paths without a trailing slash; accept both forms without redirecting."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = OPTIONAL_SLASH


router = OptionalSlashRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register("calendars", CalendarViewSet, basename="calendar")
router.register("executors", ExecutorViewSet, basename="executor")
router.register("executions", ExecutionViewSet, basename="execution")
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("workflow-runs", WorkflowRunViewSet, basename="workflow-run")
router.register("alerts/channels", ChannelViewSet, basename="alert-channel")
router.register("alerts/rules", RuleViewSet, basename="alert-rule")
router.register("alerts/incidents", IncidentViewSet, basename="alert-incident")
router.register("alerts/notifications", NotificationViewSet, basename="alert-notification")

api_v1 = [
    re_path(rf"^health{OPTIONAL_SLASH}$", HealthView.as_view(), name="health"),
    re_path(rf"^auth/token{OPTIONAL_SLASH}$", TokenObtainView.as_view(), name="auth-token"),
    re_path(rf"^auth/token/refresh{OPTIONAL_SLASH}$", TokenRefreshView.as_view(), name="auth-token-refresh"),
    re_path(rf"^scheduler/status{OPTIONAL_SLASH}$", SchedulerStatusView.as_view(), name="scheduler-status"),
    # Live executions and cluster figures (executions/live_views.py, scheduling/live_views.py).
    re_path(rf"^scheduler/running{OPTIONAL_SLASH}$", RunningExecutionsView.as_view(), name="scheduler-running"),
    re_path(rf"^scheduler/metrics{OPTIONAL_SLASH}$", SchedulerMetricsView.as_view(), name="scheduler-metrics"),
    # Before the router, whose execution detail route would take "callbacks" for an id.
    re_path(rf"^executions/callbacks{OPTIONAL_SLASH}$", ExecutionCallbacksView.as_view(), name="execution-callbacks"),
    re_path(rf"^executions/leases{OPTIONAL_SLASH}$", LeaseRenewalView.as_view(), name="execution-leases"),
    re_path(rf"^executors/shutdown{OPTIONAL_SLASH}$", ExecutorShutdownView.as_view(), name="executor-shutdown"),
    re_path(rf"^executions/(?P<pk>[^/]+)/logs{OPTIONAL_SLASH}$", ExecutionLogsView.as_view(), name="execution-logs"),
    re_path(rf"^executions/(?P<pk>[^/]+)/progress{OPTIONAL_SLASH}$", ExecutionProgressView.as_view(),
            name="execution-progress"),
    *router.urls,
]


@csrf_exempt  # nothing is done with the request; a POST to a mistyped path must read 404, not a CSRF 403 page
def _api_not_found(request, *args, **kwargs):
    return json_error_view(404, f"no API endpoint at {request.path}")(request)


urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Any other path under /api (``/api/v1``, ``/api/v1/nope``, ``/api/v2/...``) answers in the API's error
    # shape, whatever DEBUG says.
    re_path(r"^api(?:/[\s\S]*)?$", _api_not_found),
    path("admin/", admin.site.urls),
    # Prometheus text format, outside the API (no envelope).
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
]



def _server_error(request):
    if request.path.startswith("/api/"):
        return json_error_view(500, "internal server error")(request)
    return defaults.server_error(request)


handler500 = _server_error
