"""The operators' console: Django's admin site with a live dashboard as its index page."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from console.dashboard import dashboard
from core.clock import utc_now

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
        panel = [path("dashboard/panel/", self.admin_view(self.dashboard_panel), name="dashboard_panel")]
        return panel + super().get_urls()

    def dashboard_panel(self, request):
        """Just the dashboard's panel, which the index page fetches to refresh itself in place."""
        context = {**self.each_context(request), "dashboard": dashboard(utc_now()),
                   "refresh_seconds": REFRESH_SECONDS}
        return TemplateResponse(request, "admin/console/dashboard_panel.html", context)
