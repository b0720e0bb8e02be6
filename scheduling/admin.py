from django.contrib import admin

from scheduling.models import SchedulerInstance


@admin.register(SchedulerInstance)
class SchedulerInstanceAdmin(admin.ModelAdmin):
    list_display = ["instance_id", "host", "port", "is_leader", "leader_since", "updated_at"]
    list_filter = ["is_leader"]
    search_fields = ["instance_id", "host"]
    readonly_fields = ["id", "created_at", "updated_at", "leader_since"]
