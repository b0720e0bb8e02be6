from django.contrib import admin

from executions.models import TaskExecution


@admin.register(TaskExecution)
class TaskExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "executor", "status", "trigger_type", "scheduled_time", "start_time", "end_time",
                    "retry_count", "duration_ms"]
    list_filter = ["status", "trigger_type"]
    list_select_related = ["task", "executor"]
    search_fields = ["id", "task__name"]
    raw_id_fields = ["task", "executor", "retry_of"]
    date_hierarchy = "scheduled_time"
    # Exact counts over a large history table are slow (XXL-Job's dashboard lesson).
    show_full_result_count = False
    readonly_fields = ["created_at"]
