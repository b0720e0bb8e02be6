"""The console's workflow editor (nodes and edges as inlines), the DAG drawn as SVG, and the run list with
each run's graph coloured by its nodes' states. Writes go through ``workflows.services``; a graph the
services refuse (a cycle, an unreachable node, a deleted task) is not saved and the reason is shown."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db import models
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from console.actions import HistoryAdminMixin, RefusalsAsMessagesMixin, run_each
from console.dag import DagNode, dag_svg
from console.display import EMPTY, badge, pretty_json, when
from console.paging import BoundedCountAdminMixin
from core.clock import utc_now
from core.workflows import Edge
from workflows import services
from workflows.choices import WorkflowRunStatus
from workflows.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowRun
from workflows.runs import graph_of, snapshot
from workflows.selectors import run_nodes

RECENT_RUNS = 10


class WorkflowNodeInline(admin.TabularInline):
    model = WorkflowNode
    fields = ["name", "task", "parameters", "position"]
    raw_id_fields = ["task"]
    extra = 1
    formfield_overrides = {models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 40})}}


class WorkflowEdgeInline(admin.TabularInline):
    model = WorkflowEdge
    fields = ["parent", "child", "condition"]
    extra = 1

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Only this workflow's nodes (saved ones: add nodes first, then connect them).
        if db_field.name in ("parent", "child"):
            workflow_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = WorkflowNode.objects.filter(workflow_id=workflow_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workflow)
class WorkflowAdmin(RefusalsAsMessagesMixin, admin.ModelAdmin):
    list_display = ["name", "status_badge", "schedule", "next_run", "last_run"]
    list_filter = ["status"]
    search_fields = ["name", "=id"]
    inlines = [WorkflowNodeInline, WorkflowEdgeInline]
    actions = ["trigger_selected"]
    readonly_fields = ["graph", "recent_runs", "next_run_time"]
    fieldsets = [
        (None, {"fields": ["name", "description", "status"]}),
        ("Graph", {"fields": ["graph"]}),
        ("Schedule", {"fields": ["schedule_type", "cron_expression", "interval_seconds", "start_at", "run_at",
                                 "timezone", "misfire_policy", "overlap_policy", "next_run_time"]}),
        ("Runs", {"fields": ["max_parallel_nodes", "parameters", "recent_runs"]}),
    ]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Schedule")
    def schedule(self, obj):
        if not obj.schedule_type:
            return "by hand"
        return obj.cron_expression if obj.schedule_type == "cron" else obj.get_schedule_type_display()

    @admin.display(description="Next run", ordering="next_run_time")
    def next_run(self, obj):
        return when(obj.next_run_time, now=utc_now())

    def get_queryset(self, request):
        # The last run's id and status in the list's one query, not one query per row.
        last = WorkflowRun.objects.filter(workflow=OuterRef("pk")).order_by("-scheduled_time", "-created_at")
        return super().get_queryset(request).annotate(last_run_id=Subquery(last.values("pk")[:1]),
                                                      last_run_status=Subquery(last.values("status")[:1]))

    @admin.display(description="Last run")
    def last_run(self, obj):
        if obj.last_run_id is None:
            return EMPTY
        label = WorkflowRunStatus(obj.last_run_status).label
        return format_html('<a href="{}">{}</a>', _run_url(obj.last_run_id), badge(obj.last_run_status, label))

    @admin.display(description="DAG")
    def graph(self, obj):
        if obj.pk is None:
            return "Add nodes and save; then connect them with edges."
        graph = snapshot(obj)
        tasks = {node.task_id: node.task.name for node in obj.nodes.select_related("task")}
        nodes = [DagNode(node["name"], tasks.get(node["task_id"], "")) for node in graph["nodes"]]
        return mark_safe(dag_svg(nodes, [Edge(**edge) for edge in graph["edges"]]))  # noqa: S308 - escaped inside

    @admin.display(description="Recent runs")
    def recent_runs(self, obj):
        if obj.pk is None:
            return EMPTY
        runs = obj.runs.defer("graph")[:RECENT_RUNS]
        if not runs:
            return EMPTY
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="{}">{}</a> {} {}</li>',
            ((_run_url(run.pk), when(run.scheduled_time), badge(run.status, run.get_status_display()), run.trigger_type)
             for run in runs)))

    def save_model(self, request, obj, form, change):
        """Fields first; the schedule is recomputed through the service once the graph is saved too."""
        obj.save()

    def save_related(self, request, form, formsets, change):
        """After the inlines are written, in the same transaction: the whole graph goes through the
        services' checks (a refusal rolls everything back) and the schedule is recomputed."""
        super().save_related(request, form, formsets, change)
        reschedule = not change or bool(set(form.changed_data) & services.SCHEDULE_FIELDS)
        services.workflow_saved_elsewhere(workflow_id=form.instance.pk, now=utc_now(), reschedule=reschedule)

    @admin.action(description="Trigger now (a run with the workflow's parameters)", permissions=["change"])
    def trigger_selected(self, request, queryset):
        run_each(request, queryset, lambda workflow: services.workflow_trigger(
            workflow_id=workflow.pk, parameters=None, now=utc_now()), done="Triggered")


def _run_url(run_id: str) -> str:
    return reverse("admin:workflows_workflowrun_change", args=[quote(run_id)])


def _execution_url(execution_id: str | None) -> str:
    return reverse("admin:executions_taskexecution_change", args=[quote(execution_id)]) if execution_id else ""


@admin.register(WorkflowRun)
class WorkflowRunAdmin(HistoryAdminMixin, BoundedCountAdminMixin, admin.ModelAdmin):
    list_display = ["short_id", "workflow_link", "status_badge", "trigger_type", "scheduled", "started", "ended",
                    "round"]
    list_filter = ["status", "trigger_type"]
    list_select_related = ["workflow"]
    search_fields = ["=id", "=workflow__id", "workflow__name"]
    actions = ["cancel_selected", "rerun_selected"]
    fields = ["workflow_link", "status_badge", "trigger_type", "round", "scheduled", "started", "ended", "reason",
              "graph_svg", "node_table", "parameters_pretty"]
    readonly_fields = fields

    @admin.display(description="Run", ordering="scheduled_time")
    def short_id(self, obj):
        return format_html('<code title="{}">{}</code>', obj.pk, obj.pk[:8])

    @admin.display(description="Workflow", ordering="workflow__name")
    def workflow_link(self, obj):
        url = reverse("admin:workflows_workflow_change", args=[quote(obj.workflow_id)])
        return format_html('<a href="{}">{}</a>', url, obj.workflow.name)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="Scheduled", ordering="scheduled_time")
    def scheduled(self, obj):
        return when(obj.scheduled_time, now=utc_now())

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj):
        return when(obj.started_at, now=utc_now())

    @admin.display(description="Ended", ordering="ended_at")
    def ended(self, obj):
        return when(obj.ended_at, now=utc_now())

    @admin.display(description="DAG (each node coloured by its latest execution)")
    def graph_svg(self, obj):
        rows = run_nodes(obj)
        nodes = [DagNode(row.name, row.execution_status or "", row.execution_status or "",
                         _execution_url(row.execution_id)) for row in rows]
        return mark_safe(dag_svg(nodes, graph_of(obj)[1]))  # noqa: S308 - every text escaped inside

    @admin.display(description="Trigger parameters")
    def parameters_pretty(self, obj):
        return pretty_json(obj.parameters)

    @admin.display(description="Nodes")
    def node_table(self, obj):
        rows = run_nodes(obj)
        return format_html(
            '<table class="console-table"><tr><th>Node</th><th>State</th><th>Execution</th><th>Attempt</th></tr>'
            "{}</table>",
            format_html_join("", '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', (
                (row.name, badge(row.execution_status) if row.execution_status else row.state,
                 format_html('<a href="{}">{}</a>', _execution_url(row.execution_id), row.execution_id[:8])
                 if row.execution_id else EMPTY, row.retry_count if row.retry_count is not None else EMPTY)
                for row in rows)))

    @admin.action(description="Cancel (pending or running runs)", permissions=["change"])
    def cancel_selected(self, request, queryset):
        run_each(request, queryset, lambda run: services.run_cancel(run_id=run.pk, now=utc_now()), done="Cancelled")

    @admin.action(description="Re-run from the failed nodes (failed runs)", permissions=["change"])
    def rerun_selected(self, request, queryset):
        run_each(request, queryset, lambda run: services.run_rerun(run_id=run.pk, now=utc_now()), done="Re-ran")
