from datetime import UTC

import django_filters
from django import forms
from rest_framework.exceptions import ValidationError

from executions.choices import ExecutionStatus
from executions.models import TaskExecution


def _status_list(raw: str) -> list[str]:
    statuses = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = sorted(set(statuses) - set(ExecutionStatus.values))
    if unknown:
        raise ValidationError(
            {"status": [f"unknown status {', '.join(unknown)}; use {', '.join(ExecutionStatus.values)}"]},
            code="invalid_choice",
        )
    return statuses


class _UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 instant that exists in UTC: ``0001-01-01T00:00:00+14:00`` parses but is before year 1
    in UTC, which MySQL's and SQLite's drivers cannot represent (OverflowError, not a 400)."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("date/time is out of range once converted to UTC", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class ExecutionFilter(django_filters.FilterSet):
    """Spec 000 §7.1 filters. start_time/end_time bound ``scheduled_time`` (inclusive)."""

    task_id = django_filters.CharFilter(field_name="task_id", max_length=64)
    executor_id = django_filters.CharFilter(field_name="executor_id", max_length=64)
    status = django_filters.CharFilter(method="filter_status", help_text="Comma-separated statuses.")
    start_time = UtcIsoDateTimeFilter(field_name="scheduled_time", lookup_expr="gte")
    end_time = UtcIsoDateTimeFilter(field_name="scheduled_time", lookup_expr="lte")
    parent_id = django_filters.CharFilter(method="filter_parent", max_length=64,
                                          help_text="Only the shards of this broadcast run.")
    level = django_filters.ChoiceFilter(choices=[("run", "run"), ("shard", "shard")], method="filter_level")

    class Meta:
        model = TaskExecution
        fields = ["task_id", "executor_id", "status", "start_time", "end_time", "parent_id", "level"]

    def filter_parent(self, queryset, name, value):
        """The shards share their run's fire key (task, scheduled time, trigger, node key): found through its
        index."""
        parent = TaskExecution.objects.filter(pk=value, shard=0).only("task_id", "scheduled_time", "trigger_type",
                                                                      "node_key").first()
        if parent is None:
            return queryset.none()
        return queryset.filter(**parent.fire_key(), shard__gt=0)

    def filter_level(self, queryset, name, value):
        return queryset.filter(shard=0) if value == "run" else queryset.filter(shard__gt=0)

    def filter_status(self, queryset, name, value):
        return queryset.filter(status__in=_status_list(value))

