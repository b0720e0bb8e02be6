from rest_framework import serializers

from scheduling.models import SchedulerInstance


class SchedulerInstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = SchedulerInstance
        fields = ["id", "instance_id", "host", "port", "is_leader", "leader_since", "leader_term",
                  "clock_offset_seconds", "leadership_refusal", "created_at", "updated_at"]
        read_only_fields = fields


class LeaderInfoSerializer(serializers.Serializer):
    instance_id = serializers.CharField()
    host = serializers.CharField()
    since = serializers.DateTimeField()


class ClusterStatusSerializer(serializers.Serializer):
    total_instances = serializers.IntegerField()
    healthy_instances = serializers.IntegerField()
    has_leader = serializers.BooleanField()


class SystemMetricsSerializer(serializers.Serializer):
    total_tasks = serializers.IntegerField()
    active_tasks = serializers.IntegerField()
    paused_tasks = serializers.IntegerField()
    total_executors = serializers.IntegerField()
    online_executors = serializers.IntegerField()
    healthy_executors = serializers.IntegerField()
    running_executions = serializers.IntegerField()
    pending_executions = serializers.IntegerField()


class SchedulerStatusSerializer(serializers.Serializer):
    instances = SchedulerInstanceSerializer(many=True)
    leader_info = LeaderInfoSerializer(allow_null=True)
    cluster_status = ClusterStatusSerializer()
    system_metrics = SystemMetricsSerializer()
    timestamp = serializers.DateTimeField()


class _DatabaseHealth(serializers.Serializer):
    status = serializers.CharField()
    response_time = serializers.IntegerField(help_text="milliseconds")


class _SchedulerHealth(serializers.Serializer):
    status = serializers.CharField()
    is_leader = serializers.BooleanField(help_text="whether some scheduler node currently leads")
    leader_instance_id = serializers.CharField(allow_null=True)
    active_tasks = serializers.IntegerField()


class _ExecutorsHealth(serializers.Serializer):
    status = serializers.CharField()
    total = serializers.IntegerField()
    online = serializers.IntegerField()
    offline = serializers.IntegerField()
    healthy = serializers.IntegerField()


class _Components(serializers.Serializer):
    database = _DatabaseHealth()
    scheduler = _SchedulerHealth()
    executors = _ExecutorsHealth()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded"])
    timestamp = serializers.DateTimeField()
    components = _Components()


class _TaskRef(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class _ExecutorRef(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    instance_id = serializers.CharField()


class RunningExecutionSerializer(serializers.Serializer):
    id = serializers.CharField()
    task = _TaskRef()
    executor = _ExecutorRef(allow_null=True)
    scheduled_time = serializers.DateTimeField()
    start_time = serializers.DateTimeField(allow_null=True)
    running_seconds = serializers.FloatField(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True, help_text="When the run times out (before the grace).")
    retry_count = serializers.IntegerField()
    progress_percent = serializers.FloatField(allow_null=True)
    progress_step = serializers.CharField()
    progress_updated_at = serializers.DateTimeField(allow_null=True)


class _Memory(serializers.Serializer):
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    available_bytes = serializers.IntegerField()
    percent = serializers.FloatField()


class _Disk(serializers.Serializer):
    path = serializers.CharField()
    total_bytes = serializers.IntegerField()
    used_bytes = serializers.IntegerField()
    free_bytes = serializers.IntegerField()
    percent = serializers.FloatField()


class _Node(serializers.Serializer):
    hostname = serializers.CharField()
    cpu_percent = serializers.FloatField(help_text="Machine-wide CPU use since the previous request.")
    cpu_count = serializers.IntegerField()
    memory = _Memory()
    disk = _Disk()


class _CompletedToday(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    timeout = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class _ExecutionFigures(serializers.Serializer):
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    completed_today = _CompletedToday(help_text="Reached a final status today (UTC day), per status.")


class _Leader(serializers.Serializer):
    instance_id = serializers.CharField()
    host = serializers.CharField()
    since = serializers.DateTimeField()


class SchedulerMetricsSerializer(serializers.Serializer):
    node = _Node()
    executions = _ExecutionFigures()
    leader = _Leader(allow_null=True)
    timestamp = serializers.DateTimeField()


