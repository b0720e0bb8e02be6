from django.contrib import admin

from tasks.models import Task, TaskExecutor


class TaskExecutorInline(admin.TabularInline):
    model = TaskExecutor
    extra = 0
    raw_id_fields = ["executor"]
    fields = ["executor", "priority", "weight", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["name", "cron_expression", "status", "execution_mode", "load_balance_strategy", "next_run_time",
                    "max_retry", "timeout_seconds", "updated_at"]
    list_filter = ["status", "execution_mode", "load_balance_strategy", "misfire_policy"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "next_run_time", "created_at", "updated_at"]
    inlines = [TaskExecutorInline]


@admin.register(TaskExecutor)
class TaskExecutorAdmin(admin.ModelAdmin):
    list_display = ["task", "executor", "priority", "weight", "created_at"]
    list_select_related = ["task", "executor"]
    raw_id_fields = ["task", "executor"]
    search_fields = ["task__name", "executor__name", "executor__instance_id"]
