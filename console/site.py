"""The operators' console: Django's admin site with a live dashboard as its index page."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse

from console.cluster import cluster
from console.dashboard import dashboard
from console.executor_overview import overview
from console.timeline import TimelineForm, timeline, timeline_chart
from core.clock import utc_now
from core.timeline import Window, Zoom

# The dashboard reloads its panel this often (seconds).
REFRESH_SECONDS = 10
MAX_PAGE = 100_000


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Task Scheduler console"
    site_title = "Task Scheduler"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        context = {"dashboard": dashboard(utc_now()), "refresh_seconds": REFRESH_SECONDS, **(extra_context or {})}
        return super().index(request, extra_context=context)

    def get_urls(self):
        console = [path("dashboard/panel/", self.admin_view(self.dashboard_panel), name="dashboard_panel"),
                   path("timeline/", self.admin_view(self.timeline_view), name="timeline"),
                   path("executors-overview/", self.admin_view(self.executors_view), name="executors_overview"),
                   path("cluster/", self.admin_view(self.cluster_view), name="cluster")]
        return console + super().get_urls()

    def dashboard_panel(self, request):
        """Just the dashboard's panel, which the index page fetches to refresh itself in place."""
        context = {**self.each_context(request), "dashboard": dashboard(utc_now()),
                   "refresh_seconds": REFRESH_SECONDS}
        return TemplateResponse(request, "admin/console/dashboard_panel.html", context)

    def timeline_view(self, request):
        """What ran when and what will fire next, one lane per task (``console.timeline``)."""
        form = TimelineForm(request.GET or None)
        window = Window.around(utc_now(), Zoom(form.cleaned_value("zoom")))
        filters = form.filters()
        lanes = timeline(window, filters)
        chart = timeline_chart(window, lanes, execution_url=lambda pk: reverse(
            "admin:executions_taskexecution_change", args=[pk]))
        context = {**self.each_context(request), "title": "Timeline", "form": form, "window": window,
                   "chart": chart, "lanes": lanes, "zooms": [(zoom.value, _with_zoom(request, zoom)) for zoom in Zoom]}
        return TemplateResponse(request, "admin/console/timeline.html", context)


    def executors_view(self, request):
        """Executors at a glance (``console.executor_overview``); for whoever may view executors."""
        _require(request, "executors.view_executor")
        context = {**self.each_context(request), "title": "Executors at a glance",
                   "overview": overview(utc_now(), _page_number(request))}
        return TemplateResponse(request, "admin/console/executors_overview.html", context)

    def cluster_view(self, request):
        """The scheduler nodes (``console.cluster``); for whoever may view them."""
        _require(request, "scheduling.view_schedulerinstance")
        context = {**self.each_context(request), "title": "Cluster", "cluster": cluster(utc_now())}
        return TemplateResponse(request, "admin/console/cluster.html", context)


def _require(request, permission: str) -> None:
    """The model permission the page's rows need, as the admin's own pages of those rows do."""
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _page_number(request) -> int:
    try:
        return min(max(int(request.GET.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        return 1


def _with_zoom(request, zoom: Zoom) -> str:
    query = request.GET.copy()
    query["zoom"] = zoom.value
    return "?" + query.urlencode()
