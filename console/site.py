"""The operators' console: Django's admin site with a live dashboard as its index page."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse

from console.dashboard import dashboard
from console.timeline import TimelineForm, timeline, timeline_chart
from core.clock import utc_now
from core.timeline import Window, Zoom

# The dashboard reloads its panel this often (seconds).
REFRESH_SECONDS = 10


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Task Scheduler console"
    site_title = "Task Scheduler"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        context = {"dashboard": dashboard(utc_now()), "refresh_seconds": REFRESH_SECONDS, **(extra_context or {})}
        return super().index(request, extra_context=context)

    def get_urls(self):
        console = [path("dashboard/panel/", self.admin_view(self.dashboard_panel), name="dashboard_panel"),
                   path("timeline/", self.admin_view(self.timeline_view), name="timeline")]
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


def _with_zoom(request, zoom: Zoom) -> str:
    query = request.GET.copy()
    query["zoom"] = zoom.value
    return "?" + query.urlencode()
