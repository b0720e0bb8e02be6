from __future__ import annotations

from rest_framework import serializers

from core.calendars import MAX_ENTRY_LENGTH, CalendarError, parse_entry
from core.clock import utc_now
from core.controls import MAX_JITTER_SECONDS
from core.cron import CronError, validate_cron, zone
from scheduler_project.fields import JSONObjectField, LabelsField, MaskedJSONField, StrictSerializer
from scheduler_project.text import refuse_control_characters
from tasks.choices import ExecutionMode, LoadBalanceStrategy, MisfirePolicy, ScheduleType, TaskStatus
from tasks.models import (
    MAX_INTERVAL_SECONDS,
    MAX_RETRY_LIMIT,
    MAX_TIMEOUT_SECONDS,
    BlackoutCalendar,
    Task,
    TaskExecutor,
)


def cron_field_validator(value: str) -> str:
    try:
        validate_cron(value, utc_now())
    except CronError as exc:
        raise serializers.ValidationError(str(exc), code="invalid_cron") from None
    return value


# Every success rate in the API (executions.selectors.FINISHED_STATUSES).
SUCCESS_RATE_HELP = ("Percent of finished runs (success, failed — lost runs included —, timeout) that succeeded; "
                     "skipped and cancelled runs are not counted, nor are pending or running ones.")


class ExecutorBriefSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    is_healthy = serializers.BooleanField()


class TaskExecutorInTaskSerializer(serializers.ModelSerializer):
    executor = ExecutorBriefSerializer()

    class Meta:
        model = TaskExecutor
        fields = ["id", "executor_id", "priority", "weight", "executor"]


class TaskSerializer(serializers.ModelSerializer):
    """TaskResponse (spec 000 §3.2.1), plus the scheduler's misfire policy and next fire time."""

    parameters = MaskedJSONField()
    task_executors = TaskExecutorInTaskSerializer(many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                              help_text="Username of the user who created the task.")
    created_by_key = serializers.SlugRelatedField(slug_field="prefix", read_only=True, allow_null=True,
                                                  help_text="Prefix of the API key the task was created with.")
    calendars = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                   help_text="Ids of the blackout calendars the task skips.")
    executor_labels = serializers.DictField(child=serializers.CharField(),
                                            help_text="Only executors carrying all these labels run it.")

    class Meta:
        model = Task
        fields = [
            "id", "name", "cron_expression", "parameters", "execution_mode", "load_balance_strategy",
            "max_retry", "timeout_seconds", "status", "misfire_policy", "next_run_time",
            "schedule_type", "interval_seconds", "start_at", "end_at", "run_at", "timezone", "priority",
            "max_instances", "jitter_seconds", "calendars", "executor_labels",
            "finished_at", "created_at", "updated_at", "task_executors", "created_by", "created_by_key",
        ]
        read_only_fields = fields


class TaskBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ["id", "name", "status"]


_READ_ONLY_TASK_KEYS = frozenset(
    {"id", "created_at", "updated_at", "task_executors", "next_run_time", "finished_at", "created_by",
     "created_by_key"}
)


def timezone_field_validator(value: str) -> str:
    try:
        zone(value)
    except CronError as exc:
        raise serializers.ValidationError(str(exc), code="invalid_timezone") from None
    return value


class TaskWriteSerializer(StrictSerializer):
    """CreateTaskRequest / UpdateTaskRequest. On update (partial) every field is optional."""

    tolerated_read_only = _READ_ONLY_TASK_KEYS

    name = serializers.CharField(max_length=255, validators=[refuse_control_characters])
    schedule_type = serializers.ChoiceField(choices=ScheduleType.choices, required=False)
    # Required for cron tasks (the default type), checked with the other schedule fields by the service.
    cron_expression = serializers.CharField(max_length=100, validators=[cron_field_validator], required=False)
    interval_seconds = serializers.IntegerField(min_value=1, max_value=MAX_INTERVAL_SECONDS, required=False,
                                                allow_null=True)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, validators=[timezone_field_validator])
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    max_instances = serializers.IntegerField(min_value=1, max_value=10_000, required=False, allow_null=True)
    parameters = JSONObjectField(required=False)
    execution_mode = serializers.ChoiceField(choices=ExecutionMode.choices, required=False)
    load_balance_strategy = serializers.ChoiceField(choices=LoadBalanceStrategy.choices, required=False)
    max_retry = serializers.IntegerField(min_value=0, max_value=MAX_RETRY_LIMIT, required=False)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=MAX_TIMEOUT_SECONDS, required=False)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False)
    jitter_seconds = serializers.IntegerField(min_value=0, max_value=MAX_JITTER_SECONDS, required=False,
                                              allow_null=True)
    calendars = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50, required=False,
                                      help_text="Ids of blackout calendars (GET /calendars).")
    executor_labels = LabelsField(required=False)


class TaskUpdateSerializer(TaskWriteSerializer):
    """UpdateTaskRequest: a partial update (spec 000 §5.4), so the schema marks no field required."""

    name = serializers.CharField(max_length=255, required=False)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)


class PlannedFireSerializer(serializers.Serializer):
    scheduled_time = serializers.DateTimeField()
    dispatch_at = serializers.DateTimeField(help_text="scheduled_time plus the task's jitter for that time.")
    blackout = serializers.CharField(allow_null=True, help_text="The calendar (and entry) that skips this fire; "
                                     "null when it runs.")


class NextRunsSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    schedule_type = serializers.ChoiceField(choices=ScheduleType.choices)
    timezone = serializers.CharField()
    next_runs = serializers.ListField(child=serializers.DateTimeField(),
                                      help_text="The fire times that will run (window and calendars applied).")
    fires = PlannedFireSerializer(many=True, help_text="Every fire time up to the last of next_runs, the "
                                  "blacked-out ones included, each with its dispatch instant.")


class BackfillRequestSerializer(StrictSerializer):
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()


class BackfillResultSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    fire_times = serializers.IntegerField(help_text="Fire times of the schedule in the range (both ends included).")
    created = serializers.IntegerField(help_text="Runs this request created (pending, trigger_type backfill).")
    skipped = serializers.IntegerField(help_text="Fire times in a blackout calendar, recorded as skipped.")
    existing = serializers.IntegerField(help_text="Fire times an earlier backfill already recorded.")


def calendar_entry_validator(value: str) -> str:
    try:
        parse_entry(value)
    except CalendarError as exc:
        raise serializers.ValidationError(str(exc), code="invalid_entry") from None
    return value


class CalendarSerializer(serializers.ModelSerializer):
    entries = serializers.ListField(child=serializers.CharField())
    task_ids = serializers.SerializerMethodField()

    class Meta:
        model = BlackoutCalendar
        fields = ["id", "name", "timezone", "entries", "description", "task_ids", "created_at", "updated_at"]
        read_only_fields = fields

    def get_task_ids(self, calendar: BlackoutCalendar) -> list[str]:
        return [task.pk for task in calendar.tasks.all()]


class CalendarWriteSerializer(StrictSerializer):
    tolerated_read_only = frozenset({"id", "task_ids", "created_at", "updated_at"})

    name = serializers.CharField(max_length=255)
    timezone = serializers.CharField(max_length=64, required=False, validators=[timezone_field_validator])
    entries = serializers.ListField(child=serializers.CharField(max_length=MAX_ENTRY_LENGTH,
                                                                validators=[calendar_entry_validator]),
                                    max_length=1000, required=False,
                                    help_text='"2026-12-25", "2026-12-24..2026-12-26" or "Sun 02:00-04:00".')
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class NextRunsQuery(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=100, required=False, default=5)


class TriggerSerializer(StrictSerializer):
    parameters = JSONObjectField(required=False)


class TaskStatusChangeSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    previous_status = serializers.ChoiceField(choices=TaskStatus.choices)
    current_status = serializers.ChoiceField(choices=TaskStatus.choices)


class AssignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskExecutor
        fields = ["id", "task_id", "executor_id", "priority", "weight", "created_at"]


class AssignmentExecutorSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    instance_id = serializers.CharField()
    status = serializers.CharField()
    is_healthy = serializers.BooleanField()
    base_url = serializers.CharField()


class AssignmentDetailSerializer(AssignmentSerializer):
    executor = AssignmentExecutorSerializer()

    class Meta(AssignmentSerializer.Meta):
        fields = [*AssignmentSerializer.Meta.fields, "executor"]


class AssignCreateSerializer(StrictSerializer):
    executor_id = serializers.CharField(max_length=64)
    priority = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000, required=False)
    weight = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class AssignUpdateSerializer(StrictSerializer):
    tolerated_read_only = frozenset({"id", "task_id", "executor_id", "created_at", "executor"})

    priority = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000, required=False)
    weight = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class HealthSummarySerializer(serializers.Serializer):
    health_score = serializers.FloatField(
        help_text="Success rate minus twice the timeout rate, both taken over finished runs only (success, "
        "failed, timeout); skipped and cancelled runs are not counted.")
    total_count = serializers.IntegerField()
    success_count = serializers.IntegerField()
    failed_count = serializers.IntegerField()
    timeout_count = serializers.IntegerField()
    avg_duration_seconds = serializers.FloatField(allow_null=True)
    period_days = serializers.IntegerField()


class DayCountsSerializer(serializers.Serializer):
    date = serializers.DateField()
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(help_text=SUCCESS_RATE_HELP)


class DailyRateSerializer(serializers.Serializer):
    date = serializers.DateField()
    successRate = serializers.FloatField()  # noqa: N815 - the spec's field name
    total = serializers.IntegerField()


class ShardCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    timeout = serializers.IntegerField()


class TaskStatsSerializer(serializers.Serializer):
    success_rate_24h = serializers.FloatField(help_text=SUCCESS_RATE_HELP)
    total_24h = serializers.IntegerField()
    success_24h = serializers.IntegerField()
    shards_24h = ShardCountsSerializer(help_text="Broadcast tasks: their shards over the same 24 h (the other "
                                       "figures count each fire once).")
    health_90d = HealthSummarySerializer()
    recent_executions = DayCountsSerializer(many=True)
    daily_stats_90d = DailyRateSerializer(many=True)
