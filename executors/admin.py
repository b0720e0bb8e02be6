from django.contrib import admin

from executors.models import Executor


@admin.register(Executor)
class ExecutorAdmin(admin.ModelAdmin):
    list_display = ["name", "instance_id", "base_url", "status", "is_healthy", "health_check_failures",
                    "last_health_check", "updated_at"]
    list_filter = ["status", "is_healthy"]
    search_fields = ["name", "instance_id", "base_url", "id"]
    readonly_fields = ["id", "last_health_check", "health_check_failures", "health_check_successes",
                       "created_at", "updated_at"]
