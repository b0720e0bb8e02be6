from __future__ import annotations

from rest_framework import serializers

from executions.choices import CALLBACK_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from executions.services import ReportOutcome
from executors.serializers import MAX_HELD_RUNS, HeldRunSerializer
from scheduler_project.fields import JSONObjectField, MaskedJSONField, StrictSerializer
from tasks.serializers import SUCCESS_RATE_HELP

MAX_CALLBACK_LOG_CHARS = 1_000_000


class _TaskSummary(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()


class _ExecutionTaskDetail(_TaskSummary):
    cron_expression = serializers.CharField()
    execution_mode = serializers.CharField()
    load_balance_strategy = serializers.CharField()


class _ExecutorSummary(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()


class _ExecutionExecutorDetail(_ExecutorSummary):
    instance_id = serializers.CharField()
    base_url = serializers.CharField()
    is_healthy = serializers.BooleanField()


_BASE_FIELDS = [
    "id", "task_id", "executor_id", "scheduled_time", "start_time", "end_time", "status", "result", "logs",
    "retry_count", "created_at", "trigger_type", "parameters", "duration_ms", "retry_of_id",
    "progress_percent", "progress_step", "progress_updated_at", "workflow_run_id",
    "parent_id", "shard_index", "shard_total",
]


class ExecutionSerializer(serializers.ModelSerializer):
    """TaskExecutionResponse (spec 000 §3.2.3) with task and executor summaries, as in the list (§7.1)."""

    result = MaskedJSONField(allow_null=True)
    parameters = MaskedJSONField()
    task = _TaskSummary()
    executor = _ExecutorSummary(allow_null=True)
    parent_id = serializers.CharField(allow_null=True, read_only=True,
                                      help_text="Broadcast shards: the logical run they belong to.")
    shard_index = serializers.IntegerField(allow_null=True, read_only=True,
                                           help_text="Broadcast shards: 0-based index of this shard.")
    shard_total = serializers.IntegerField(allow_null=True, read_only=True,
                                           help_text="Broadcast runs and shards: how many shards the fire has.")

    class Meta:
        model = TaskExecution
        fields = [*_BASE_FIELDS, "task", "executor"]
        read_only_fields = fields


class ExecutionDetailSerializer(ExecutionSerializer):
    """The detail view (§7.3) shows more of the task and executor."""

    task = _ExecutionTaskDetail()
    executor = _ExecutionExecutorDetail(allow_null=True)


class TriggeredExecutionSerializer(serializers.ModelSerializer):
    """What a trigger answers (spec 000 §5.6)."""

    parameters = MaskedJSONField()

    class Meta:
        model = TaskExecution
        fields = ["id", "task_id", "scheduled_time", "status", "created_at", "trigger_type", "parameters"]
        read_only_fields = fields


CALLBACK_STATUS_CHOICES = [(status.value, ExecutionStatus(status).label) for status in CALLBACK_STATUSES]


class CallbackSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=CALLBACK_STATUS_CHOICES)
    result = JSONObjectField(required=False, null_as_empty=False)
    logs = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 max_length=MAX_CALLBACK_LOG_CHARS)
    end_time = serializers.DateTimeField(required=False, allow_null=True)


class ExecutionStatusChangeSerializer(serializers.Serializer):
    execution_id = serializers.CharField()
    previous_status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    current_status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    stopped_at = serializers.DateTimeField()


class ExecutionStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    timeout = serializers.IntegerField()
    running = serializers.IntegerField()
    pending = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    success_rate = serializers.FloatField(help_text=SUCCESS_RATE_HELP)
    avg_duration = serializers.FloatField()
    total_duration = serializers.FloatField()
    start_time = serializers.DateTimeField(
        help_text="The window covered: the start_time asked for, or 24 hours before end_time (or now) without one.")
    end_time = serializers.DateTimeField(help_text="The window's end: the end_time asked for, or now without one.")


# The choices of CallbackSerializer.status, by name for SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: two request
# bodies (single and batch) share the set, which drf-spectacular can only name from an override.
MAX_CALLBACK_BATCH = 500  # results per POST /executions/callbacks (one transaction, one UPDATE per status)


class CallbackItemSerializer(CallbackSerializer):
    """One result of a batch: the single callback's body, with the execution it is about."""

    execution_id = serializers.CharField(max_length=64)


class CallbackBatchSerializer(StrictSerializer):
    """Results of several executions, each at most once; refused whole (400) if any of them is malformed."""

    results = serializers.ListField(child=CallbackItemSerializer(), min_length=1, max_length=MAX_CALLBACK_BATCH)

    def validate_results(self, items: list[dict]) -> list[dict]:
        seen: set[str] = set()
        for item in items:
            if item["execution_id"] in seen:
                raise serializers.ValidationError(
                    f"execution '{item['execution_id']}' appears more than once: send one result per execution",
                    code="duplicate")
            seen.add(item["execution_id"])
        return items


class CallbackVerdictSerializer(serializers.Serializer):
    execution_id = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=[(outcome.value, outcome.value) for outcome in ReportOutcome],
        help_text="applied; already_final: the run had ended, nothing changed (30002 for a single callback); "
        "not_found: no such execution (30001); not_yours: not dispatched to the signing executor (401).")
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, allow_null=True,
                                     help_text="The execution's status now; null when not_found or not_yours.")


class CallbackBatchResultSerializer(serializers.Serializer):
    applied = serializers.IntegerField()
    already_final = serializers.IntegerField()
    not_found = serializers.IntegerField()
    not_yours = serializers.IntegerField()
    results = CallbackVerdictSerializer(many=True, help_text="One verdict per result sent, in the same order.")



class LeaseRenewalSerializer(StrictSerializer):
    """Every run the executor holds, in one request (an empty list is a plain heartbeat)."""

    executions = serializers.ListField(child=HeldRunSerializer(), max_length=MAX_HELD_RUNS)


class LeaseRenewalResultSerializer(serializers.Serializer):
    renewed = serializers.ListField(child=serializers.CharField(), help_text="Leases renewed.")
    revoked = serializers.ListField(
        child=serializers.CharField(),
        help_text="Runs not this executor's to run any more (final, re-dispatched, unknown): stop them.")
    lease_seconds = serializers.FloatField(help_text="How long a renewed lease lasts.")
    renew_seconds = serializers.FloatField(help_text="How often to renew.")
