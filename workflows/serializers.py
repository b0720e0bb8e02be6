from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler_project.fields import JSONObjectField, StrictSerializer
from tasks.choices import MisfirePolicy
from tasks.models import MAX_INTERVAL_SECONDS
from tasks.serializers import cron_field_validator, timezone_field_validator
from workflows.choices import EdgeCondition, OverlapPolicy, WorkflowRunStatus, WorkflowStatus
from workflows.models import MAX_NODES, NODE_NAME, SCHEDULE_CHOICES, Workflow, WorkflowRun


class WorkflowNodeSerializer(StrictSerializer):
    name = serializers.CharField(max_length=64, validators=[NODE_NAME])
    task_id = serializers.CharField(max_length=64)
    parameters = JSONObjectField(required=False)


class WorkflowEdgeSerializer(StrictSerializer):
    parent = serializers.CharField(max_length=64)
    child = serializers.CharField(max_length=64)
    condition = serializers.ChoiceField(choices=EdgeCondition.choices, required=False,
                                        default=EdgeCondition.ON_SUCCESS)


class WorkflowSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField()
    nodes = serializers.SerializerMethodField()
    edges = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "status", "schedule_type", "cron_expression", "interval_seconds",
                  "start_at", "run_at", "timezone", "misfire_policy", "overlap_policy", "max_parallel_nodes",
                  "parameters", "next_run_time", "finished_at", "created_at", "updated_at", "nodes", "edges"]
        read_only_fields = fields

    @extend_schema_field(WorkflowNodeSerializer(many=True))
    def get_nodes(self, workflow: Workflow) -> list[dict]:
        return [{"name": n.name, "task_id": n.task_id, "parameters": n.parameters} for n in workflow.nodes.all()]

    @extend_schema_field(WorkflowEdgeSerializer(many=True))
    def get_edges(self, workflow: Workflow) -> list[dict]:
        return [{"parent": e.parent.name, "child": e.child.name, "condition": e.condition}
                for e in workflow.edges.all()]


_READ_ONLY = frozenset({"id", "next_run_time", "finished_at", "created_at", "updated_at"})


class WorkflowWriteSerializer(StrictSerializer):
    """Create (name and nodes required) or update (every field optional; ``nodes`` and ``edges`` replace
    the graph)."""

    tolerated_read_only = _READ_ONLY

    name = serializers.CharField(max_length=255)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=WorkflowStatus.choices, required=False)
    schedule_type = serializers.ChoiceField(choices=SCHEDULE_CHOICES, required=False, allow_blank=True)
    cron_expression = serializers.CharField(max_length=100, validators=[cron_field_validator], required=False)
    interval_seconds = serializers.IntegerField(min_value=1, max_value=MAX_INTERVAL_SECONDS, required=False,
                                                allow_null=True)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, validators=[timezone_field_validator])
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False)
    overlap_policy = serializers.ChoiceField(choices=OverlapPolicy.choices, required=False, error_messages={
        "invalid_choice": '"{input}" is not a workflow overlap policy: parallel, sequential or skip (a task\'s '
                          'replace and queue modes do not apply between workflow runs).'})
    max_parallel_nodes = serializers.IntegerField(min_value=1, max_value=MAX_NODES, required=False, allow_null=True)
    parameters = JSONObjectField(required=False)
    nodes = WorkflowNodeSerializer(many=True, max_length=MAX_NODES)
    edges = WorkflowEdgeSerializer(many=True, required=False, max_length=MAX_NODES * 4)


class ChainSerializer(StrictSerializer):
    task_ids = serializers.ListField(child=serializers.CharField(max_length=64), min_length=2, max_length=MAX_NODES)
    condition = serializers.ChoiceField(choices=EdgeCondition.choices, required=False,
                                        default=EdgeCondition.ON_SUCCESS)
    name = serializers.CharField(max_length=255, required=False)


class WorkflowTriggerSerializer(StrictSerializer):
    parameters = JSONObjectField(required=False)


class WorkflowRunNodeSerializer(serializers.Serializer):
    name = serializers.CharField()
    task_id = serializers.CharField()
    state = serializers.CharField(help_text="waiting, active, succeeded, failed or skipped")
    execution_id = serializers.CharField(allow_null=True)
    execution_status = serializers.CharField(allow_null=True)
    retry_count = serializers.IntegerField(allow_null=True)


class WorkflowRunSerializer(serializers.ModelSerializer):
    parameters = serializers.JSONField()

    class Meta:
        model = WorkflowRun
        fields = ["id", "workflow_id", "scheduled_time", "trigger_type", "status", "round", "parameters",
                  "reason", "started_at", "ended_at", "created_at"]
        read_only_fields = fields


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    nodes = WorkflowRunNodeSerializer(many=True, source="node_rows")
    edges = WorkflowEdgeSerializer(many=True, source="graph.edges")

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "nodes", "edges"]
        read_only_fields = fields


class RunListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=WorkflowRunStatus.choices, required=False)
