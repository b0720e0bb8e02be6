from rest_framework import serializers

from scheduling.models import SchedulerInstance


class SchedulerInstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = SchedulerInstance
        fields = ["id", "instance_id", "host", "port", "is_leader", "leader_since", "created_at", "updated_at"]
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
