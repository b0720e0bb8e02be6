"""The console's task pages. Every write goes through ``tasks.services``; reads are annotated in one query."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, FloatField, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Coalesce, NullIf
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from console.actions import (
    REFUSALS,
    RefusalsAsMessagesMixin,
    intermediate_page,
    refusal_text,
    run_each,
)
from console.charts import RatePoint, rate_bars
from console.display import EMPTY, MaskedJSONFieldsMixin, badge, pretty_json, rate_text, when
from console.paging import BoundedCountAdminMixin
from core.clock import utc_now
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.selectors import task_stats
from scheduler_project.config import tunable
from tasks import services
from tasks.admin_forms import BackfillForm, CalendarAdminForm, TaskAdminForm, TriggerForm
from tasks.choices import ScheduleType, TaskStatus
from tasks.models import BlackoutCalendar, Task, TaskExecutor
from tasks.schedule_text import describe_cron, describe_schedule, preview

RECENT_RUNS = 10
STATS_DAYS = 90


def _count(runs) -> Coalesce:
    """COUNT(*) of a correlated execution subquery, 0 when there are none."""
    counted = runs.order_by().values("task").annotate(n=Count("id")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


class StateFilter(admin.SimpleListFilter):
    """Status, with soft-deleted tasks hidden unless asked for."""

    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [*TaskStatus.choices, ("all", "All, deleted included")]

    def choices(self, changelist):
        yield {"selected": self.value() is None, "display": "Active or paused",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for value, label in self.lookup_choices:
            yield {"selected": self.value() == value, "display": label,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset.exclude(status=TaskStatus.DELETED)
        if value == "all":
            return queryset
        return queryset.filter(status=value)

    def get_facet_counts(self, pk_attname, filtered_qs):
        return {}


class LastRunFilter(admin.SimpleListFilter):
    title = "last run"
    parameter_name = "last_run"

    def lookups(self, request, model_admin):
        return [(status.value, status.label) for status in ExecutionStatus] + [("never", "Never ran")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "never":
            return queryset.filter(last_run_status__isnull=True)
        if value:
            return queryset.filter(last_run_status=value)
        return queryset

    def get_facet_counts(self, pk_attname, filtered_qs):
        return {}


class TaskExecutorInline(admin.TabularInline):
    model = TaskExecutor
    extra = 0
    autocomplete_fields = ["executor"]
    fields = ["executor", "executor_state", "priority", "weight", "created_at"]
    readonly_fields = ["executor_state", "created_at"]
    verbose_name = "executor assignment"
    verbose_name_plural = "Executor assignments (lower priority number is tried first; weight for weighted round robin)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("executor")

    @admin.display(description="Executor state")
    def executor_state(self, obj):
        if not obj.pk:
            return EMPTY
        executor = obj.executor
        return format_html("{} {}", badge(executor.status),
                           badge("healthy" if executor.is_healthy else "unhealthy"))


class MaskedTaskAdminForm(MaskedJSONFieldsMixin, TaskAdminForm):
    masked_json_fields = ("parameters",)


@admin.register(Task)
class TaskAdmin(RefusalsAsMessagesMixin, BoundedCountAdminMixin, admin.ModelAdmin):
    form = MaskedTaskAdminForm
    list_display = ["name", "schedule", "mode", "strategy", "status_badge", "next_run", "last_run",
                    "success_rate_24h"]
    list_filter = [StateFilter, LastRunFilter, "schedule_type", "execution_mode", "load_balance_strategy",
                   "misfire_policy"]
    search_fields = ["name", "=id", "cron_expression"]
    list_per_page = 50
    # Facet counts would repeat the per-row subqueries once per filter choice.
    show_facets = admin.ShowFacets.NEVER
    # With the id, the order is total: else the console adds "-pk", a direction idx_name (name, id) cannot
    # serve, and a million tasks are sorted for every page.
    ordering = ["name", "id"]
    inlines = [TaskExecutorInline]
    readonly_fields = ["id", "status_badge", "next_run_time", "finished_at", "created_at", "updated_at",
                       "schedule_preview", "recent_runs", "parameters_masked", "created_by", "created_by_key"]
    fieldsets = [
        (None, {"fields": ["name", "status_badge", "next_run_time"]}),
        ("Schedule", {"fields": ["schedule_type", "cron_expression", "timezone", "interval_seconds", "start_at",
                                 "end_at", "run_at", "calendars", "jitter_seconds", "schedule_preview"]}),
        ("Execution", {"fields": ["parameters", "execution_mode", "load_balance_strategy", "executor_labels",
                                  "misfire_policy", "max_retry", "timeout_seconds", "priority", "max_instances"]}),
        ("Recent runs", {"fields": ["recent_runs"]}),
        ("Record", {"fields": ["id", "finished_at", "created_at", "created_by", "created_by_key", "updated_at"],
                    "classes": ["collapse"]}),
    ]
    add_fieldsets = [(None, {"fields": ["name"]}), fieldsets[1], fieldsets[2]]
    actions = ["trigger_now", "backfill", "pause", "resume", "soft_delete", "restore"]
    filter_horizontal = ["calendars"]

    class Media:
        js = ["console/schedule_preview.js"]

    # --- reads -------------------------------------------------------------------------------------------

    def get_queryset(self, request):
        runs = TaskExecution.objects.filter(task=OuterRef("pk"))
        day = runs.filter(scheduled_time__gte=utc_now() - timedelta(hours=24))
        return super().get_queryset(request).annotate(
            last_run_status=Subquery(runs.order_by("-scheduled_time", "-created_at").values("status")[:1]),
            runs_24h=_count(day),
            successes_24h=_count(day.filter(status=ExecutionStatus.SUCCESS)),
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if self.has_change_permission(request, obj):
            return self.fieldsets
        # Read-only pages print fields as they are stored: show the parameters masked instead.
        return [(title, {**options, "fields": ["parameters_masked" if name == "parameters" else name
                                                for name in options["fields"]]})
                for title, options in self.fieldsets]

    def has_change_permission(self, request, obj=None):
        # A soft-deleted task is read-only until restored (the service refuses to update it).
        if obj is not None and obj.status == TaskStatus.DELETED:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # Tasks are soft-deleted through the "Delete (soft)" action: their history stays.
        return False

    # --- columns -----------------------------------------------------------------------------------------

    @admin.display(description="Schedule", ordering="cron_expression")
    def schedule(self, obj):
        if obj.schedule_type == ScheduleType.CRON:
            zone = "" if obj.timezone in ("", "UTC") else f" ({obj.timezone})"
            return format_html('<code class="console-cron">{}</code><div class="console-quiet">{}{}</div>',
                               obj.cron_expression, describe_cron(obj.cron_expression) or "unreadable", zone)
        return format_html('<span class="console-quiet">{}</span>', describe_schedule(obj))

    @admin.display(description="Mode", ordering="execution_mode")
    def mode(self, obj):
        return obj.get_execution_mode_display()

    @admin.display(description="Strategy", ordering="load_balance_strategy")
    def strategy(self, obj):
        return obj.get_load_balance_strategy_display()

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Next run", ordering="next_run_time")
    def next_run(self, obj):
        return when(obj.next_run_time, now=utc_now())

    @admin.display(description="Last run", ordering="last_run_status")
    def last_run(self, obj):
        return badge(obj.last_run_status)

    @admin.display(description="24 h success",
                   ordering=Cast(F("successes_24h"), FloatField()) / NullIf(F("runs_24h"), 0))
    def success_rate_24h(self, obj):
        return rate_text(obj.successes_24h, obj.runs_24h)

    @admin.display(description="Parameters")
    def parameters_masked(self, obj):
        return pretty_json(obj.parameters)

    @admin.display(description="Next fire times")
    def schedule_preview(self, obj):
        saved = obj is not None and not obj._state.adding
        figures = preview(obj, utc_now()) if saved else None
        return render_to_string("admin/tasks/task/schedule_preview.html", {
            "preview": figures, "paused": obj is not None and obj.status != TaskStatus.ACTIVE,
            "url": reverse("admin:tasks_task_schedule_preview"),
        })

    @admin.display(description=f"Last {RECENT_RUNS}")
    def recent_runs(self, obj):
        if obj is None or obj._state.adding:
            return EMPTY
        runs = list(TaskExecution.objects.filter(task=obj).select_related("executor")
                    .order_by("-scheduled_time", "-created_at")[:RECENT_RUNS])
        return render_to_string("admin/tasks/task/recent_runs.html", {"runs": runs, "task": obj})

    # --- writes ------------------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if "calendars" in form.cleaned_data:  # the services take ids
            form.cleaned_data["calendars"] = [calendar.pk for calendar in form.cleaned_data["calendars"]]
        names = [name for name in form.fields if name in form.cleaned_data]
        if change:
            data = {name: form.cleaned_data[name] for name in form.changed_data if name in names}
            services.task_update(task_id=obj.pk, data=data, now=utc_now())
        else:
            task = services.task_create(data={name: form.cleaned_data[name] for name in names}, now=utc_now(),
                                        created_by=request.user)
            # The admin keeps using ``obj`` (inlines, log entry, redirect): point it at the created row.
            obj.pk = task.pk
            obj._state.adding = False
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not TaskExecutor:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # fills new/changed/deleted_objects for the change message; writes nothing
        task_id = form.instance.pk
        deleted = set(formset.deleted_forms)
        for row in formset.initial_forms:
            old_executor = row.initial["executor"]
            if row in deleted:
                services.assignment_delete(task_id=task_id, executor_id=old_executor)
            elif row.has_changed():
                values = {"priority": row.cleaned_data["priority"], "weight": row.cleaned_data["weight"]}
                new_executor = row.cleaned_data["executor"].pk
                if new_executor == old_executor:
                    services.assignment_update(task_id=task_id, executor_id=new_executor, data=values)
                else:
                    services.assignment_delete(task_id=task_id, executor_id=old_executor)
                    services.assignment_create(task_id=task_id, executor_id=new_executor, **values)
        for row in formset.extra_forms:
            if row.has_changed() and row not in deleted:
                services.assignment_create(task_id=task_id, executor_id=row.cleaned_data["executor"].pk,
                                           priority=row.cleaned_data["priority"], weight=row.cleaned_data["weight"])

    # --- actions -----------------------------------------------------------------------------------------

    @admin.action(description="Trigger now (optional parameters)…", permissions=["change"])
    def trigger_now(self, request, queryset):
        form = TriggerForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            now = utc_now()
            parameters = form.cleaned_data["parameters"]
            done = run_each(request, queryset, lambda task: services.task_trigger(
                task_id=task.pk, parameters=parameters, now=now), done="Triggered")
            if done:
                url = reverse("admin:executions_taskexecution_changelist") + "?trigger_type__exact=manual&when=1h"
                messages.info(request, format_html('<a href="{}">See the triggered executions</a>', url))
            return None
        return intermediate_page(self, request, queryset, form=form, action="trigger_now", title="Trigger now",
                                 submit="Trigger now",
                                 intro="Each selected task gets one manual run now, whatever its execution mode.")

    @admin.action(description="Backfill a time range…", permissions=["change"])
    def backfill(self, request, queryset):
        form = BackfillForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            start, end, now = form.cleaned_data["start_time"], form.cleaned_data["end_time"], utc_now()
            results = []
            done = run_each(request, queryset, lambda task: results.append(services.task_backfill(
                task_id=task.pk, start=start, end=end, now=now)), done="Backfilled")
            if done:
                created = sum(result.created for result in results)
                existing = sum(result.existing for result in results)
                skipped = sum(result.skipped for result in results)
                messages.info(request, f"{created} run(s) created, {skipped} skipped in a blackout, {existing} "
                                       "already backfilled earlier (left alone).")
            return None
        return intermediate_page(
            self, request, queryset, form=form, action="backfill", title="Backfill", submit="Backfill",
            intro="Each selected task gets a run (trigger type backfill, its original scheduled time) for every fire "
                  "time of its schedule in the range, run with its execution mode and max_instances; at most "
                  f"{tunable('BACKFILL_LIMIT')} per task. Asking again creates only the runs not recorded yet.")

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        now = utc_now()
        run_each(request, queryset, lambda task: services.task_pause(task_id=task.pk, now=now), done="Paused")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        now = utc_now()
        run_each(request, queryset, lambda task: services.task_resume(task_id=task.pk, now=now), done="Resumed")

    @admin.action(description="Delete (soft: history is kept, can be restored)", permissions=["change"])
    def soft_delete(self, request, queryset):
        now = utc_now()
        run_each(request, queryset, lambda task: services.task_delete(task_id=task.pk, now=now), done="Deleted")

    @admin.action(description="Restore deleted (comes back paused)", permissions=["change"])
    def restore(self, request, queryset):
        now = utc_now()
        run_each(request, queryset, lambda task: services.task_restore(task_id=task.pk, now=now), done="Restored")

    # --- per-task pages ----------------------------------------------------------------------------------

    STATUS_VERBS = {
        "pause": (services.task_pause, "Paused"),
        "resume": (services.task_resume, "Resumed"),
        "soft-delete": (services.task_delete, "Deleted"),
        "restore": (services.task_restore, "Restored"),
    }

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("schedule-preview/", view(self.schedule_preview_view), name="tasks_task_schedule_preview"),
            path("<path:object_id>/stats/", view(self.stats_view), name="tasks_task_stats"),
            path("<path:object_id>/trigger/", view(self.trigger_view), name="tasks_task_trigger"),
            *[path(f"<path:object_id>/{verb}/", view(self.status_view), {"verb": verb}, name=f"tasks_task_{verb}")
              for verb in self.STATUS_VERBS],
        ] + super().get_urls()

    def _task_or_redirect(self, request, object_id):
        task = self.get_object(request, unquote(object_id))
        if task is None:
            return None, self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return task, None

    def _change_url(self, task):
        return reverse("admin:tasks_task_change", args=[quote(task.pk)])

    def status_view(self, request, object_id, verb):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        task, missing = self._task_or_redirect(request, object_id)
        if missing:
            return missing
        service, done = self.STATUS_VERBS[verb]
        now = utc_now()
        run_each(request, [task], lambda t: service(task_id=t.pk, now=now), done=done)
        return redirect(self._change_url(task))

    def trigger_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        task, missing = self._task_or_redirect(request, object_id)
        if missing:
            return missing
        form = TriggerForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                execution = services.task_trigger(task_id=task.pk, parameters=form.cleaned_data["parameters"],
                                                  now=utc_now())
            except REFUSALS as exc:
                messages.error(request, f"{task}: {refusal_text(exc)}")
                return redirect(self._change_url(task))
            messages.success(request, f"Triggered {task}: this execution is pending until the scheduler dispatches it.")
            return redirect(reverse("admin:executions_taskexecution_change", args=[quote(execution.pk)]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "task": task, "form": form,
            "title": f"Trigger {task.name} now", "media": self.media + form.media,
            "task_parameters": pretty_json(task.parameters) if task.parameters else "",
        }
        return TemplateResponse(request, "admin/tasks/task/trigger.html", context)

    def stats_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        task, missing = self._task_or_redirect(request, object_id)
        if missing:
            return missing
        now = utc_now()
        stats = task_stats(task.pk, now)
        by_day = {row["date"]: row for row in stats["daily_stats_90d"]}
        days = [now.date() - timedelta(days=back) for back in range(STATS_DAYS - 1, -1, -1)]
        points = [
            RatePoint(label=f"{day:%m-%d}", title=day.isoformat(),
                      rate=by_day[day]["successRate"] if day in by_day else None,
                      total=by_day[day]["total"] if day in by_day else 0)
            for day in days
        ]
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "task": task, "stats": stats,
            "title": f"Statistics of {task.name}", "now": now,
            "chart": mark_safe(rate_bars(points, label=f"Daily success rate of {task.name}, last {STATS_DAYS} days")),  # noqa: S308 - built with every text escaped
            "executions_url": reverse("admin:executions_taskexecution_changelist") + "?" + urlencode({"task": task.pk}),
        }
        return TemplateResponse(request, "admin/tasks/task/stats.html", context)

    def schedule_preview_view(self, request):
        """JSON for the change form's live preview: the typed schedule in words and its next fire times."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(preview(_unsaved_task(request.GET), utc_now()))


def _unsaved_task(params) -> Task:
    """A task built from the change form's current (unsaved, possibly invalid) schedule fields."""
    moment = forms.SplitDateTimeField(required=False)

    def when(name):
        try:
            return moment.clean([params.get(f"{name}_0", ""), params.get(f"{name}_1", "")])
        except forms.ValidationError:
            return None

    try:
        interval = int(params.get("interval_seconds") or 0) or None
    except ValueError:
        interval = None
    return Task(
        schedule_type=params.get("schedule_type") or ScheduleType.CRON,
        cron_expression=" ".join(params.get("cron_expression", "").split()),
        timezone=params.get("timezone", "").strip() or "UTC",
        interval_seconds=interval if interval and interval > 0 else None,
        start_at=when("start_at") or utc_now(), end_at=when("end_at"), run_at=when("run_at"),
    )


@admin.register(BlackoutCalendar)
class BlackoutCalendarAdmin(RefusalsAsMessagesMixin, admin.ModelAdmin):
    form = CalendarAdminForm
    list_display = ["name", "timezone", "entry_count", "task_count", "updated_at"]
    search_fields = ["name"]
    ordering = ["name"]
    fields = ["name", "timezone", "entries_text", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tasks_using=Count("tasks"))

    @admin.display(description="entries")
    def entry_count(self, obj):
        return len(obj.entries or [])

    @admin.display(description="tasks", ordering="tasks_using")
    def task_count(self, obj):
        return obj.tasks_using

    def save_model(self, request, obj, form, change):
        data = {"name": form.cleaned_data["name"], "timezone": form.cleaned_data["timezone"],
                "description": form.cleaned_data.get("description", ""), "entries": form.cleaned_data["entries_text"]}
        calendar = (services.calendar_update(calendar_id=obj.pk, data=data) if change
                    else services.calendar_create(data=data))
        obj.pk = calendar.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.calendar_delete(calendar_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for calendar in queryset:
            services.calendar_delete(calendar_id=calendar.pk)


@admin.register(TaskExecutor)
class TaskExecutorAdmin(admin.ModelAdmin):
    """All assignments at a glance. They are edited on the task's page; removing one here (or by deleting its
    executor) goes through the assignment service."""

    list_display = ["task", "executor", "priority", "weight", "created_at"]
    list_select_related = ["task", "executor"]
    search_fields = ["task__name", "executor__name", "executor__instance_id"]
    raw_id_fields = ["task", "executor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.assignment_delete(task_id=obj.task_id, executor_id=obj.executor_id)

    def delete_queryset(self, request, queryset):
        for assignment in queryset:
            services.assignment_delete(task_id=assignment.task_id, executor_id=assignment.executor_id)
