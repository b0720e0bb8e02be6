from __future__ import annotations

import math
from datetime import UTC, datetime

from rest_framework import serializers

from alerts.choices import ConditionChoice, FailureNotice, NotificationKind, NotificationStatus
from alerts.models import AlertRule, Channel, Incident, Notification
from scheduler_project.fields import StrictSerializer

MAX_URL_CHARS = 2000
MAX_RATE_WINDOW_SECONDS = 7 * 24 * 3600
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _moment(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST <= value <= LATEST:
        raise serializers.ValidationError("must be between 2000-01-01 and 9000-01-01")
    return value


class ChannelSerializer(serializers.ModelSerializer):
    url = serializers.CharField(source="masked_url", read_only=True,
                                help_text="Masked: only the scheme is shown once saved.")

    class Meta:
        model = Channel
        fields = ["id", "name", "url", "enabled", "mute_until", "rate_limit", "rate_window_seconds", "created_at",
                  "updated_at"]


class ChannelCreatedSerializer(ChannelSerializer):
    signing_secret = serializers.CharField(
        read_only=True, help_text="Signs this channel's signed+http(s) webhook requests. Shown once, here.")

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "signing_secret"]


class ChannelWriteSerializer(StrictSerializer):
    tolerated_read_only = frozenset({"id", "created_at", "updated_at"})

    name = serializers.CharField(max_length=255)
    url = serializers.CharField(max_length=MAX_URL_CHARS, write_only=True,
                                help_text="An Apprise URL (mailto://, slack://, msteams://...), "
                                          "signed+https://host/path for our signed webhook, or log://")
    enabled = serializers.BooleanField(required=False)
    mute_until = serializers.DateTimeField(required=False, allow_null=True, validators=[_moment])
    rate_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=100_000)
    rate_window_seconds = serializers.IntegerField(required=False, min_value=1, max_value=MAX_RATE_WINDOW_SECONDS)

    def validate_url(self, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value):
            raise serializers.ValidationError("must not contain spaces")
        return value


class RuleSerializer(serializers.ModelSerializer):
    task_id = serializers.CharField(read_only=True, allow_null=True)
    channel_ids = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = ["id", "task_id", "enabled", "on_failure", "consecutive_failures", "on_skip", "on_recovery",
                  "duration_factor", "silence_windows", "mute_until", "channel_ids", "on_executor_unhealthy",
                  "no_leader_seconds", "on_node_stale", "created_at", "updated_at"]

    def get_channel_ids(self, rule: AlertRule) -> list[str]:
        return sorted(channel.pk for channel in rule.channels.all())


class RuleWriteSerializer(StrictSerializer):
    tolerated_read_only = frozenset({"id", "created_at", "updated_at"})

    task_id = serializers.CharField(required=False, allow_null=True, max_length=64,
                                    help_text="The task this rule overrides the global one for; null or absent: "
                                              "the global rule. Set at creation only.")
    enabled = serializers.BooleanField(required=False)
    on_failure = serializers.ChoiceField(choices=FailureNotice.choices, required=False)
    consecutive_failures = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1000)
    on_skip = serializers.BooleanField(required=False)
    on_recovery = serializers.BooleanField(required=False)
    duration_factor = serializers.FloatField(required=False, allow_null=True, min_value=1.01, max_value=1000)
    silence_windows = serializers.CharField(required=False, allow_blank=True, max_length=255)
    mute_until = serializers.DateTimeField(required=False, allow_null=True, validators=[_moment])
    channel_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    on_executor_unhealthy = serializers.BooleanField(required=False)
    no_leader_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=86_400)
    on_node_stale = serializers.BooleanField(required=False)

    def validate_duration_factor(self, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


class IncidentSerializer(serializers.ModelSerializer):
    condition = serializers.ChoiceField(choices=ConditionChoice.choices)
    task_id = serializers.CharField(allow_null=True)
    executor_id = serializers.CharField(allow_null=True)
    last_execution_id = serializers.CharField(allow_null=True)
    is_open = serializers.BooleanField()

    class Meta:
        model = Incident
        fields = ["id", "condition", "subject", "task_id", "executor_id", "last_execution_id", "summary", "count",
                  "opened_at", "last_seen_at", "resolved_at", "is_open"]


class NotificationSerializer(serializers.ModelSerializer):
    channel_id = serializers.CharField()
    incident_id = serializers.CharField(allow_null=True)
    kind = serializers.ChoiceField(choices=NotificationKind.choices)
    status = serializers.ChoiceField(choices=NotificationStatus.choices)

    class Meta:
        model = Notification
        fields = ["id", "channel_id", "incident_id", "kind", "status", "title", "attempts", "last_error",
                  "event_at", "created_at", "next_attempt_at", "sent_at"]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL characters")
    return value


class IncidentListQuery(serializers.Serializer):
    state = serializers.ChoiceField(choices=[("open", "open"), ("resolved", "resolved")], required=False)
    task_id = serializers.CharField(required=False, max_length=64, validators=[_no_nul])
    executor_id = serializers.CharField(required=False, max_length=64, validators=[_no_nul])


class NotificationListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=NotificationStatus.choices, required=False)
    channel_id = serializers.CharField(required=False, max_length=64, validators=[_no_nul])
