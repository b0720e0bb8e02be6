import django_filters
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


class ExecutionFilter(django_filters.FilterSet):
    """Spec 000 §7.1 filters. start_time/end_time bound ``scheduled_time`` (inclusive)."""

    task_id = django_filters.CharFilter(field_name="task_id", max_length=64)
    executor_id = django_filters.CharFilter(field_name="executor_id", max_length=64)
    status = django_filters.CharFilter(method="filter_status", help_text="Comma-separated statuses.")
    start_time = django_filters.IsoDateTimeFilter(field_name="scheduled_time", lookup_expr="gte")
    end_time = django_filters.IsoDateTimeFilter(field_name="scheduled_time", lookup_expr="lte")

    class Meta:
        model = TaskExecution
        fields = ["task_id", "executor_id", "status", "start_time", "end_time"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(status__in=_status_list(value))

