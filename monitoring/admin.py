"""Scheduler nodes as the console shows them: leader, heartbeat age, fresh or stale. Written by the nodes
themselves; an operator may only remove the row of a node that is gone for good."""

from django.contrib import admin
from django.utils.html import format_html

from console.display import age_text, badge
from core.clock import utc_now
from scheduler_project.config import tunable
from scheduling.models import SchedulerInstance


@admin.register(SchedulerInstance)
class SchedulerInstanceAdmin(admin.ModelAdmin):
    list_display = ["instance_id", "host", "port", "role", "leader_since", "heartbeat"]
    list_filter = ["is_leader"]
    search_fields = ["instance_id", "host"]
    fields = ["instance_id", "host", "port", "role", "leader_since", "heartbeat", "created_at"]
    readonly_fields = ["role", "heartbeat", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def _fresh(self, obj) -> bool:
        return (utc_now() - obj.updated_at).total_seconds() <= tunable("INSTANCE_STALE_SECONDS")

    @admin.display(description="Role", ordering="is_leader")
    def role(self, obj):
        if obj.is_leader:
            return badge("leader") if self._fresh(obj) else badge("failed", "stale leader")
        return badge("follower")

    @admin.display(description="Heartbeat", ordering="updated_at")
    def heartbeat(self, obj):
        return format_html("{} <span class='console-quiet'>{} UTC</span>",
                           badge("fresh" if self._fresh(obj) else "stale", age_text(obj.updated_at, utc_now())),
                           f"{obj.updated_at:%Y-%m-%d %H:%M:%S}")
