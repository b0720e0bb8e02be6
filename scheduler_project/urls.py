from django.contrib import admin
from django.urls import include, path, re_path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from executions.views import ExecutionViewSet
from executors.views import ExecutorViewSet
from scheduler_project.errors import json_error_view
from scheduling.views import HealthView, SchedulerStatusView
from tasks.views import TaskViewSet


class OptionalSlashRouter(SimpleRouter):
    """The spec writes paths without a trailing slash; accept both forms without redirecting."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register("executors", ExecutorViewSet, basename="executor")
router.register("executions", ExecutionViewSet, basename="execution")

api_v1 = [
    re_path(r"^health/?$", HealthView.as_view(), name="health"),
    re_path(r"^scheduler/status/?$", SchedulerStatusView.as_view(), name="scheduler-status"),
    *router.urls,
    # Last: any other path under the API answers in the API's error shape, whatever DEBUG says.
    re_path(r"^.*$", lambda request: json_error_view(404, f"no API endpoint at {request.path}")(request)),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]



def _server_error(request):
    if request.path.startswith("/api/"):
        return json_error_view(500, "internal server error")(request)
    return defaults.server_error(request)


handler500 = _server_error
