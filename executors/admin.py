"""The console's executor pages. Writes go through ``executors.services``; health checks through
``scheduling.health`` (the same probe and thresholds as the scheduler's own checks)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from console.actions import (
    RefusalsAsMessagesMixin,
    intermediate_page,
    run_each,
)
from console.display import EMPTY, age_text, badge
from core.clock import utc_now
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors import services
from executors.admin_forms import ExecutorAdminForm, StatusReasonForm
from executors.choices import ExecutorStatus
from executors.models import Executor, RevokedInstance
from scheduler_project.config import tunable
from scheduling.health import health_url, probe, record_check
from tasks.models import TaskExecutor

MAX_PARALLEL_PROBES = 8
MAX_LISTED_TASKS = 50
IDENTITY_FIELDS = ("name", "instance_id", "base_url", "health_check_url", "metadata", "labels")


def _count(queryset, by: str) -> Coalesce:
    counted = queryset.order_by().values(by).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def check_now(request, executors: list[Executor]) -> None:
    """Probe each executor's health URL now (concurrently) and record the outcome like a scheduled check."""
    if not executors:
        return
    timeout = tunable("HEALTH_CHECK_TIMEOUT_SECONDS")
    urls = [health_url(executor) for executor in executors]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PROBES, len(urls))) as pool:
        outcomes = list(pool.map(lambda executor: probe(executor, timeout), executors))
    now = utc_now()
    for executor, url, ok in zip(executors, urls, outcomes, strict=True):
        state = record_check(executor, ok=ok, now=now)
        verdict = "healthy" if state.is_healthy else "unhealthy"
        if ok:
            messages.success(request, f"{executor}: {url} answered — {verdict}")
        else:
            plural = "s" if state.failures != 1 else ""
            messages.warning(request, f"{executor}: {url} did not answer with 2xx "
                                      f"({state.failures} failure{plural} in a row) — {verdict}")


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("healthy", "Healthy"), ("unhealthy", "Unhealthy")]

    def queryset(self, request, queryset):
        if self.value() in ("healthy", "unhealthy"):
            return queryset.filter(is_healthy=self.value() == "healthy")
        return queryset


@admin.register(Executor)
class ExecutorAdmin(RefusalsAsMessagesMixin, admin.ModelAdmin):
    form = ExecutorAdminForm
    list_display = ["name", "instance_id", "base_url", "status_badge", "health", "running", "assigned_tasks"]
    list_filter = ["status", HealthFilter]
    search_fields = ["name", "instance_id", "base_url", "=id"]
    list_per_page = 50
    readonly_fields = ["id", "health_summary", "tasks", "execute_batch_limit", "signing_secret", "created_at",
                       "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "instance_id", "base_url", "health_check_url"]}),
        ("Status", {"fields": ["status", "status_reason", "health_summary"]}),
        ("Assigned tasks", {"fields": ["tasks"]}),
        ("Labels", {"fields": ["labels"]}),
        ("Dispatch", {"fields": ["execute_batch_limit"], "description": "Declared by the executor when it "
                      "registers: the most runs one POST /execute/batch may carry (0: one run per /execute)."}),
        ("Metadata", {"fields": ["metadata"], "classes": ["collapse"]}),
        ("Record", {"fields": ["id", "signing_secret", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["name", "instance_id", "base_url", "health_check_url"]}),
        ("Status", {"fields": ["status", "status_reason"]}),
        ("Labels and metadata", {"fields": ["labels", "metadata"]}),
    ]
    actions = ["set_online", "set_offline", "set_maintenance", "check_health_now", "rotate_secret", "revoke",
               "delete_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            running_count=_count(TaskExecution.objects.filter(executor=OuterRef("pk"),
                                                              status=ExecutionStatus.RUNNING), "executor"),
            assigned_count=_count(TaskExecutor.objects.filter(executor=OuterRef("pk")), "executor"),
        )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        # The instance id is the executor's identity (it re-registers under it): fixed once created.
        return [*self.readonly_fields, "instance_id"] if obj is not None else self.readonly_fields

    # --- columns -----------------------------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        if obj.status_reason:
            return format_html('{} <span class="console-quiet">{}</span>', badge(obj.status), obj.status_reason)
        return badge(obj.status)

    @admin.display(description="Health", ordering="is_healthy")
    def health(self, obj):
        checked = age_text(obj.last_health_check, utc_now()) if obj.last_health_check else "never checked"
        failures = f"{obj.health_check_failures} failed check{'s' if obj.health_check_failures != 1 else ''} · " \
            if obj.health_check_failures else ""
        return format_html('{} <span class="console-quiet">{}{}</span>',
                           badge("healthy" if obj.is_healthy else "unhealthy"), failures, checked)

    @admin.display(description="Running", ordering="running_count")
    def running(self, obj):
        if not obj.running_count:
            return 0
        url = reverse("admin:executions_taskexecution_changelist")
        return format_html('<a href="{}?executor={}&amp;status__exact=running">{}</a>', url, obj.pk, obj.running_count)

    @admin.display(description="Tasks", ordering="assigned_count")
    def assigned_tasks(self, obj):
        return obj.assigned_count

    @admin.display(description="Health")
    def health_summary(self, obj):
        if obj is None or obj._state.adding:
            return EMPTY
        return format_html(
            "{} <span class='console-quiet'>{} consecutive failures · {} consecutive successes · last check {}</span>",
            badge("healthy" if obj.is_healthy else "unhealthy"), obj.health_check_failures,
            obj.health_check_successes,
            age_text(obj.last_health_check, utc_now()) if obj.last_health_check else "never",
        )

    @admin.display(description="Signing secret")
    def signing_secret(self, obj):
        # Enough to tell two secrets apart after a rotation, never enough to use: the executor alone needs it.
        if obj is None or obj._state.adding or not obj.secret:
            return EMPTY
        return format_html('<code>{}…</code> <span class="console-quiet">{} characters; the executor receives it '
                           'when it registers. Rotate it with the “Rotate signing secret” action.</span>',
                           obj.secret[:4], len(obj.secret))

    @admin.display(description="Tasks")
    def tasks(self, obj):
        if obj is None or obj._state.adding:
            return EMPTY
        assignments = list(TaskExecutor.objects.filter(executor=obj).select_related("task")
                           .order_by("priority", "task__name")[:MAX_LISTED_TASKS])
        return render_to_string("admin/executors/executor/assigned_tasks.html",
                                {"assignments": assignments, "more": obj.assigned_count > len(assignments)})

    # --- writes ------------------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            identity = {name: data[name] for name in form.changed_data if name in IDENTITY_FIELDS}
            if identity:
                services.executor_update(executor_id=obj.pk, data=identity)
        else:
            registration = services.executor_register(
                data={name: data[name] for name in IDENTITY_FIELDS if name in data}, now=utc_now(), by_admin=True)
            # The admin keeps using ``obj`` (log entry, redirect): point it at the registered row.
            obj.pk = registration.executor.pk
            obj._state.adding = False
        if change:
            status_given = bool({"status", "status_reason"} & set(form.changed_data))
        else:
            status_given = data["status"] != ExecutorStatus.ONLINE or bool(data["status_reason"])
        if status_given:
            services.executor_set_status(executor_id=obj.pk, status=data["status"], reason=data["status_reason"])
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.executor_delete(executor_id=obj.pk, now=utc_now())

    def delete_queryset(self, request, queryset):
        for executor in queryset:
            services.executor_delete(executor_id=executor.pk, now=utc_now())

    # --- actions -----------------------------------------------------------------------------------------

    def _set_status(self, request, queryset, status: str, *, action: str, ask_reason: bool):
        form = StatusReasonForm(request.POST if "apply" in request.POST else None)
        if not ask_reason or ("apply" in request.POST and form.is_valid()):
            reason = form.cleaned_data.get("reason", "") if ask_reason else ""
            run_each(request, queryset, lambda executor: services.executor_set_status(
                executor_id=executor.pk, status=status, reason=reason), done=f"Set {status}:")
            return None
        label = ExecutorStatus(status).label.lower()
        return intermediate_page(
            self, request, queryset, form=form, action=action, title=f"Set executors {label}", submit=f"Set {label}",
            intro="Executors that are not online get no new runs; runs already in progress continue.",
        )

    @admin.action(description="Set online", permissions=["change"])
    def set_online(self, request, queryset):
        return self._set_status(request, queryset, ExecutorStatus.ONLINE, action="set_online", ask_reason=False)

    @admin.action(description="Set offline (with reason)…", permissions=["change"])
    def set_offline(self, request, queryset):
        return self._set_status(request, queryset, ExecutorStatus.OFFLINE, action="set_offline", ask_reason=True)

    @admin.action(description="Set maintenance (with reason)…", permissions=["change"])
    def set_maintenance(self, request, queryset):
        return self._set_status(request, queryset, ExecutorStatus.MAINTENANCE, action="set_maintenance",
                                ask_reason=True)

    @admin.action(description="Rotate signing secret (the executor must re-register)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        done = run_each(request, queryset, lambda executor: services.executor_rotate_secret(executor_id=executor.pk),
                        done="Rotated the signing secret of")
        if done:
            messages.warning(request, "Until they register again, these executors refuse the scheduler's requests "
                                      "and their results are refused (the SDK re-registers on its next refusal).")

    @admin.action(description="Revoke (offline until an admin registers it again)", permissions=["change"])
    def revoke(self, request, queryset):
        run_each(request, queryset, lambda executor: services.executor_revoke(executor_id=executor.pk, now=utc_now()),
                 done="Revoked")

    @admin.action(description="Check health now", permissions=["change"])
    def check_health_now(self, request, queryset):
        check_now(request, list(queryset))

    # --- per-executor pages ------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/check-health/", view(self.check_health_view),
                 name="executors_executor_check_health"),
        ] + super().get_urls()

    def check_health_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        executor = self.get_object(request, unquote(object_id))
        if executor is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        check_now(request, [executor])
        return redirect(reverse("admin:executors_executor_change", args=[quote(executor.pk)]))


@admin.register(RevokedInstance)
class RevokedInstanceAdmin(admin.ModelAdmin):
    """Instance ids only an admin may register again; deleting a row here lifts the revocation."""

    list_display = ["instance_id", "reason", "revoked_at"]
    search_fields = ["instance_id"]
    readonly_fields = ["instance_id", "reason", "revoked_at"]

    def has_add_permission(self, request):
        return False
