"""The console's execution history. Read-only rows; "stop" and "re-run" go through the services (a stop
also tells the executor, after commit, as the API does)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from console.actions import REFUSALS, HistoryAdminMixin, refusal_text, run_each
from console.display import EMPTY, age_text, badge, duration_text, log_block, pretty_json, when
from console.filters import InputFilter, RecentFilter
from console.paging import BoundedCountAdminMixin
from core.clock import utc_now
from executions.choices import ACTIVE_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from executions.services import stop_execution
from executors.selectors import executor_ids_matching
from tasks.selectors import task_ids_matching
from tasks.services import task_trigger

# The live tail shows this many of the last lines of a running execution.
LIVE_TAIL_LINES = 2000


class TaskFilter(InputFilter):
    title = "task"
    parameter_name = "task"
    placeholder = "task name or id"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(task_id__in=task_ids_matching(value))


class ExecutorFilter(InputFilter):
    title = "executor"
    parameter_name = "executor"
    placeholder = "executor name, instance or id"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(executor_id__in=executor_ids_matching(value))


def rerun(execution: TaskExecution) -> TaskExecution:
    """A new manual run of the same task with the parameters this run had."""
    return task_trigger(task_id=execution.task_id, parameters=execution.parameters, now=utc_now())


@admin.register(TaskExecution)
class TaskExecutionAdmin(HistoryAdminMixin, BoundedCountAdminMixin, admin.ModelAdmin):
    class Media:
        js = ["console/live_tail.js"]

    list_display = ["short_id", "task_link", "executor_link", "status_badge", "trigger", "scheduled", "started",
                    "duration"]
    list_filter = ["status", "trigger_type", RecentFilter, TaskFilter, ExecutorFilter]
    list_select_related = ["task", "executor"]
    search_fields = ["=id", "=task__id"]
    search_help_text = "Exact execution id or task id. Filter by task name in the sidebar."
    date_hierarchy = "scheduled_time"
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    raw_id_fields = ["task", "executor", "retry_of"]
    actions = ["stop_selected", "rerun_selected"]
    fieldsets = [
        (None, {"fields": ["task_link", "executor_link", "status_badge", "trigger_type", "attempt", "progress",
                           "workflow_run_link"]}),
        ("Timing (UTC)", {"fields": ["scheduled", "dispatch_after_at", "started", "deadline_at", "ended",
                                     "duration"]}),
        ("Parameters", {"fields": ["parameters_pretty"]}),
        ("Result", {"fields": ["result_pretty"]}),
        ("Logs", {"fields": ["logs_block"]}),
        ("Retry lineage", {"fields": ["lineage"]}),
        ("Record", {"fields": ["id", "created_at"], "classes": ["collapse"]}),
    ]
    readonly_fields = ["task_link", "executor_link", "status_badge", "attempt", "progress", "scheduled",
                       "dispatch_after_at", "started", "deadline_at", "ended", "duration",
                       "parameters_pretty", "result_pretty", "logs_block", "lineage", "workflow_run_link"]

    # --- columns -----------------------------------------------------------------------------------------

    @admin.display(description="Execution", ordering="scheduled_time")
    def short_id(self, obj):
        return format_html('<code title="{}">{}</code>', obj.pk, obj.pk[:8])

    @admin.display(description="Task", ordering="task__name")
    def task_link(self, obj):
        url = reverse("admin:tasks_task_change", args=[quote(obj.task_id)])
        return format_html('<a href="{}">{}</a>', url, obj.task.name)

    @admin.display(description="Executor", ordering="executor__name")
    def executor_link(self, obj):
        if obj.executor is None:
            return EMPTY
        url = reverse("admin:executors_executor_change", args=[quote(obj.executor_id)])
        return format_html('<a href="{}">{}</a>', url, obj.executor.name)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Workflow run")
    def workflow_run_link(self, obj):
        if obj.workflow_run_id is None:
            return EMPTY
        node = obj.node_key.split(":", 2)[-1]
        url = reverse("admin:workflows_workflowrun_change", args=[quote(obj.workflow_run_id)])
        return format_html('<a href="{}">{}</a> (node {})', url, obj.workflow_run_id[:8], node)

    @admin.display(description="Trigger", ordering="trigger_type")
    def trigger(self, obj):
        text = obj.trigger_type if not obj.retry_count else f"{obj.trigger_type} · retry {obj.retry_count}"
        if obj.shard:
            return f"{text} · shard {obj.shard_index} of {obj.shard_total}"
        return f"{text} · broadcast to {obj.shard_total}" if obj.shard_total else text

    @admin.display(description="Scheduled", ordering="scheduled_time")
    def scheduled(self, obj):
        return when(obj.scheduled_time, now=utc_now())

    @admin.display(description="Started", ordering="start_time")
    def started(self, obj):
        return when(obj.start_time, now=utc_now())

    @admin.display(description="Not dispatched before")
    def dispatch_after_at(self, obj):
        return when(obj.dispatch_after)

    @admin.display(description="Deadline")
    def deadline_at(self, obj):
        return when(obj.deadline)

    @admin.display(description="Ended", ordering="end_time")
    def ended(self, obj):
        return when(obj.end_time)

    @admin.display(description="Attempt", ordering="retry_count")
    def attempt(self, obj):
        return "first" if not obj.retry_count else f"retry {obj.retry_count}"

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, obj):
        if obj.duration_ms is not None:
            return duration_text(obj.duration_ms)
        if obj.status == ExecutionStatus.RUNNING and obj.start_time:
            return format_html('<span class="console-quiet">running · {}</span>',
                               age_text(obj.start_time, utc_now()).removesuffix(" ago"))
        return EMPTY

    @admin.display(description="Progress")
    def progress(self, obj):
        percent, step = obj.progress_percent, obj.progress_step
        if percent is None and not step:
            return EMPTY
        return format_html('<progress max="100" value="{}"></progress> {}{}', percent or 0,
                           f"{percent:.0f}% " if percent is not None else "", step)

    @admin.display(description="Parameters")
    def parameters_pretty(self, obj):
        return pretty_json(obj.parameters)

    @admin.display(description="Result")
    def result_pretty(self, obj):
        return pretty_json(obj.result)

    @admin.display(description="Logs")
    def logs_block(self, obj):
        if obj.status not in ACTIVE_STATUSES:
            return log_block(obj.logs)
        # Followed live (static/console/live_tail.js polls the tail endpoint) until the run ends.
        return format_html(
            '<div id="live-tail" data-url="{}" data-lines="{}" data-status="{}">'
            '<p class="console-quiet"><span id="live-tail-state">following new lines while the run is {}</span> '
            '<progress id="live-progress" max="100" value="{}"></progress> <span id="live-step">{}</span></p>'
            '<pre class="console-pre console-logs" id="live-logs">{}</pre></div>',
            reverse("execution-logs", args=[obj.pk]), LIVE_TAIL_LINES, obj.status, obj.status,
            obj.progress_percent or 0, obj.progress_step, obj.logs,
        )

    @admin.display(description="Attempts of this fire")
    def lineage(self, obj):
        # Every attempt of one fire shares (task, scheduled_time, trigger_type, node_key): the unique fire key
        # but for the attempt and the shard. A broadcast run's shards share it too, so its page lists both levels.
        attempts = list(
            TaskExecution.objects.filter(**obj.fire_key()).select_related("executor").order_by("shard", "retry_count")
        )
        return render_to_string("admin/executions/taskexecution/lineage.html",
                                {"attempts": attempts, "current": obj})

    # --- actions -----------------------------------------------------------------------------------------

    @admin.action(description="Stop (running executions)", permissions=["change"])
    def stop_selected(self, request, queryset):
        run_each(request, queryset, lambda execution: stop_execution(execution_id=execution.pk, now=utc_now()),
                 done="Stopped")

    @admin.action(description="Re-run (a new manual run with the same parameters)", permissions=["change"])
    def rerun_selected(self, request, queryset):
        run_each(request, queryset, rerun, done="Re-ran")

    # --- per-execution buttons ---------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/stop/", view(self.stop_view), name="executions_taskexecution_stop"),
            path("<path:object_id>/rerun/", view(self.rerun_view), name="executions_taskexecution_rerun"),
        ] + super().get_urls()

    def _execution(self, request, object_id):
        if request.method != "POST":
            return None, HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        execution = self.get_object(request, unquote(object_id))
        if execution is None:
            return None, self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return execution, None

    def _change_url(self, execution_id: str) -> str:
        return reverse("admin:executions_taskexecution_change", args=[quote(execution_id)])

    def stop_view(self, request, object_id):
        execution, response = self._execution(request, object_id)
        if response:
            return response
        run_each(request, [execution], lambda run: stop_execution(execution_id=run.pk, now=utc_now()), done="Stopped")
        return redirect(self._change_url(execution.pk))

    def rerun_view(self, request, object_id):
        execution, response = self._execution(request, object_id)
        if response:
            return response
        try:
            new = rerun(execution)
        except REFUSALS as exc:
            messages.error(request, f"Not re-run: {refusal_text(exc)}")
            return redirect(self._change_url(execution.pk))
        messages.success(request, f"Re-ran {execution.task.name}: this new execution is pending until dispatched.")
        return redirect(self._change_url(new.pk))
