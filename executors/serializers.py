from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from rest_framework import serializers

from executors.choices import ExecutorStatus
from executors.models import Executor
from executors.netguard import RefusedURL, UnresolvableHost, check_url
from scheduler_project.fields import JSONObjectField, LabelsField, MaskedJSONField, StrictSerializer
from scheduler_project.text import refuse_control_characters
from tasks.choices import ExecutionMode, LoadBalanceStrategy, MisfirePolicy
from tasks.models import MAX_RETRY_LIMIT, MAX_TIMEOUT_SECONDS, TaskExecutor
from tasks.serializers import TaskBriefSerializer, cron_field_validator

MAX_TASKS_PER_REGISTRATION = 500


# A host name made of dot-separated labels. Unlike Django's URLValidator this accepts single-label names
# (``http://executor-1:9090``): executors in a Docker Compose network or on a LAN are reached that way.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def validate_http_url(value: str) -> None:
    message = "must be an absolute http(s) URL"
    if any(char.isspace() for char in value):
        raise serializers.ValidationError(message, code="invalid")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise serializers.ValidationError(message, code="invalid") from None
    host = parts.hostname or ""
    if parts.scheme.lower() not in ("http", "https") or not host or port == 0:
        raise serializers.ValidationError(message, code="invalid")
    if ":" in host:  # an IPv6 literal, written in brackets
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise serializers.ValidationError(message, code="invalid") from None
        return
    labels = host.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise serializers.ValidationError(message, code="invalid")


def validate_executor_url(value: str) -> None:
    """An http(s) URL that passes the address guard, as at every request to the executor
    (``executors.netguard``). A name that does not resolve yet is accepted: nothing is connected to until
    it resolves to allowed addresses."""
    validate_http_url(value)
    try:
        check_url(value)
    except UnresolvableHost:
        return
    except RefusedURL as exc:
        raise serializers.ValidationError(exc.reason, code="forbidden_address") from None


class HttpUrlField(serializers.CharField):
    """An absolute http(s) URL the scheduler may call: executors are reached over HTTP only, and never at
    link-local, metadata or (with an allowlist) unlisted addresses."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 500)
        super().__init__(**kwargs)
        self.validators.append(validate_executor_url)


class ExecutorSerializer(serializers.ModelSerializer):
    """ExecutorResponse (spec 000 §3.2.2)."""

    metadata = MaskedJSONField()
    labels = serializers.DictField(child=serializers.CharField(), help_text="Labels tasks can target.")

    class Meta:
        model = Executor
        fields = [
            "id", "name", "instance_id", "base_url", "health_check_url", "status", "status_reason", "is_healthy",
            "last_health_check", "health_check_failures", "metadata", "labels", "execute_batch_limit", "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TaskAssignmentInExecutorSerializer(serializers.ModelSerializer):
    task = TaskBriefSerializer()

    class Meta:
        model = TaskExecutor
        fields = ["id", "task_id", "priority", "weight", "task"]


class ExecutorDetailSerializer(ExecutorSerializer):
    task_executors = TaskAssignmentInExecutorSerializer(many=True, read_only=True)

    class Meta(ExecutorSerializer.Meta):
        fields = [*ExecutorSerializer.Meta.fields, "task_executors"]
        read_only_fields = fields


class ExecutorListItemSerializer(ExecutorDetailSerializer):
    """Schema only: a listed executor carries ``task_executors`` only when include_tasks=true."""

    task_executors = TaskAssignmentInExecutorSerializer(many=True, required=False,
                                                        help_text="Present only with include_tasks=true.")


class RegisterTaskSerializer(StrictSerializer):
    """A task an executor declares at registration (spec 004 "注册执行器")."""

    task_name = serializers.CharField(max_length=255, validators=[refuse_control_characters])
    cron = serializers.CharField(max_length=100, validators=[cron_field_validator])
    execution_mode = serializers.ChoiceField(choices=ExecutionMode.choices, required=False)
    load_balance_strategy = serializers.ChoiceField(choices=LoadBalanceStrategy.choices, required=False)
    timeout = serializers.IntegerField(min_value=1, max_value=MAX_TIMEOUT_SECONDS, required=False)
    max_retry = serializers.IntegerField(min_value=0, max_value=MAX_RETRY_LIMIT, required=False)
    parameters = JSONObjectField(required=False)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False)



MAX_HELD_RUNS = 1000  # runs one lease renewal or registration may name
MAX_EXECUTE_BATCH = 1000  # runs one POST /execute/batch may be declared to take


class HeldRunSerializer(StrictSerializer):
    """A run an executor holds: the execution and the attempt (from its /execute) it accepted."""

    execution_id = serializers.CharField(max_length=64)
    attempt = serializers.IntegerField(min_value=0)


class RegisterSerializer(StrictSerializer):
    name = serializers.CharField(max_length=255, validators=[refuse_control_characters])
    instance_id = serializers.CharField(max_length=255, validators=[refuse_control_characters])
    base_url = HttpUrlField()
    health_check_url = HttpUrlField(required=False, allow_blank=True)
    metadata = JSONObjectField(required=False)
    labels = LabelsField(required=False)
    tasks = RegisterTaskSerializer(many=True, required=False, max_length=MAX_TASKS_PER_REGISTRATION)
    execute_batch_limit = serializers.IntegerField(
        min_value=0, max_value=MAX_EXECUTE_BATCH, required=False,
        help_text="The most runs one POST {base_url}/execute/batch may carry (README \"Batched dispatch\"); 0 or "
                  "absent: one run per POST /execute.")
    # Reconciliation (README "Leases"): the runs the executor holds, as of an instant of its own clock.
    held_executions = serializers.ListField(child=HeldRunSerializer(), max_length=MAX_HELD_RUNS, required=False)
    held_as_of = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("held_executions" in attrs) != ("held_as_of" in attrs):
            raise serializers.ValidationError({"held_as_of": "held_executions and held_as_of go together"})
        return attrs

    def validate_tasks(self, tasks: list[dict]) -> list[dict]:
        names = [task["task_name"] for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise serializers.ValidationError(f"task_name listed more than once: {', '.join(duplicates)}")
        return tasks


class RegisteredTaskSerializer(serializers.Serializer):
    task_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["created", "updated", "skipped_deleted", "refused"])
    reason = serializers.CharField(allow_blank=True, help_text="Why a task was skipped or refused; empty otherwise.")


class RegistrationSerializer(ExecutorSerializer):
    """The one response that carries the executor's signing secret: the executor registering needs it."""

    tasks = RegisteredTaskSerializer(many=True, read_only=True, source="registered_tasks")
    stop_executions = serializers.ListField(
        child=serializers.CharField(), read_only=True, default=list,
        help_text="Runs the executor reported holding that are not its to run any more: it must stop them.")
    secret = serializers.CharField(read_only=True, help_text="This executor's signing secret (HMAC-SHA256 key "
                                   "for X-Scheduler-Signature); the same on every re-registration until rotated. "
                                   "Keep it: re-registering this instance_id needs a request signed with it.")

    class Meta(ExecutorSerializer.Meta):
        fields = [*ExecutorSerializer.Meta.fields, "tasks", "stop_executions", "secret"]
        read_only_fields = fields


class RotatedSecretSerializer(serializers.Serializer):
    executor_id = serializers.CharField(source="pk")
    secret = serializers.CharField(help_text="The new signing secret.")


class ExecutorUpdateSerializer(StrictSerializer):
    tolerated_read_only = frozenset(set(ExecutorSerializer.Meta.fields) | {"task_executors"})

    name = serializers.CharField(max_length=255, required=False, validators=[refuse_control_characters])
    base_url = HttpUrlField(required=False)
    health_check_url = HttpUrlField(required=False, allow_blank=True)
    metadata = JSONObjectField(required=False)
    labels = LabelsField(required=False)


class ExecutorStatusUpdateSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=ExecutorStatus.choices)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ExecutorStatusChangeSerializer(serializers.Serializer):
    executor_id = serializers.CharField()
    previous_status = serializers.ChoiceField(choices=ExecutorStatus.choices)
    current_status = serializers.ChoiceField(choices=ExecutorStatus.choices)
    reason = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()
