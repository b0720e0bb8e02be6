"""What the console's dashboard shows, read in a fixed handful of queries whatever the size of the history.

Cluster and counts come from ``monitoring.selectors``, success figures from ``executions.selectors``; the
per-hour and per-task breakdowns below are the dashboard's own reads, each a single grouped query over the
last 24 hours (``scheduled_time`` is indexed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncHour

from console.charts import STATUS_COLOURS, Bucket, Series, stacked_bars
from console.display import age_text
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.selectors import execution_stats, percent
from monitoring.selectors import cluster_status
from scheduler_project.config import tunable

WINDOW = timedelta(hours=24)
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)
# Bottom to top in each stacked bar.
CHART_SERIES = [
    Series(status.value, status.label, STATUS_COLOURS[status.value])
    for status in (
        ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED, ExecutionStatus.RUNNING, ExecutionStatus.PENDING,
    )
]


@dataclass(frozen=True)
class InstanceRow:
    instance_id: str
    address: str
    is_leader: bool
    leader_since: datetime | None
    heartbeat_at: datetime
    heartbeat_age_seconds: float
    heartbeat_age: str
    fresh: bool


def _last_day(now: datetime):
    return TaskExecution.objects.filter(scheduled_time__gte=now - WINDOW, scheduled_time__lte=now)


def hourly_buckets(now: datetime, hours: int = 24) -> list[Bucket]:
    """Executions per hour of ``scheduled_time`` by status, oldest hour first; the last is the current hour."""
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]
    rows = (
        TaskExecution.objects.filter(scheduled_time__gte=starts[0], scheduled_time__lte=now)
        .annotate(hour=TruncHour("scheduled_time"))
        .values("hour", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    counts: dict[datetime, dict[str, int]] = {start: {} for start in starts}
    for row in rows:
        hour = row["hour"].replace(minute=0, second=0, microsecond=0)
        if hour in counts:
            counts[hour][row["status"]] = row["count"]
    return [
        Bucket(label=f"{start:%H}h", title=f"{start:%Y-%m-%d %H:00}–{start + timedelta(hours=1):%H:00} UTC",
               values=counts[start])
        for start in starts
    ]


def hourly_chart(now: datetime) -> str:
    return stacked_bars(hourly_buckets(now), CHART_SERIES, label="Executions per hour over the last 24 h, by status")


def failing_tasks(now: datetime, limit: int = 5) -> list[dict]:
    """The tasks with the most failed or timed-out runs in the last 24 h, with their totals."""
    rows = (
        _last_day(now)
        .values("task_id", "task__name", "task__status")
        .annotate(
            failures=Count("id", filter=Q(status__in=FAILED_STATUSES)),
            successes=Count("id", filter=Q(status=ExecutionStatus.SUCCESS)),
            total=Count("id"),
            last_failure=Max("scheduled_time", filter=Q(status__in=FAILED_STATUSES)),
        )
        .filter(failures__gt=0)
        .order_by("-failures", "task__name")[:limit]
    )
    return [{**row, "failure_rate": percent(row["failures"], row["total"])} for row in rows]


def executor_load(limit: int = 8) -> list[dict]:
    """Running executions per executor, busiest first (spec 002 §6.2.4: executor load distribution)."""
    return list(
        TaskExecution.objects.filter(status=ExecutionStatus.RUNNING, executor__isnull=False)
        .values("executor_id", "executor__name", "executor__instance_id")
        .annotate(running=Count("id"))
        .order_by("-running", "executor__name")[:limit]
    )


def instance_rows(instances, now: datetime) -> list[InstanceRow]:
    stale_after = tunable("INSTANCE_STALE_SECONDS")
    rows = []
    for instance in instances:
        age = max((now - instance.updated_at).total_seconds(), 0.0)
        rows.append(InstanceRow(
            instance_id=instance.instance_id, address=f"{instance.host}:{instance.port}",
            is_leader=instance.is_leader, leader_since=instance.leader_since, heartbeat_at=instance.updated_at,
            heartbeat_age_seconds=age, heartbeat_age=age_text(instance.updated_at, now), fresh=age <= stale_after,
        ))
    return rows


def dashboard(now: datetime) -> dict:
    """Everything the dashboard panel renders."""
    cluster = cluster_status(now)
    day = execution_stats(_last_day(now), start_time=now - WINDOW, end_time=now, now=now)
    leader = cluster["leader_info"]
    return {
        "now": now,
        "instances": instance_rows(cluster["instances"], now),
        "leader": leader,
        "leader_for": age_text(leader["since"], now).removesuffix(" ago") if leader else "",
        "cluster": cluster["cluster_status"],
        "metrics": cluster["system_metrics"],
        "day": day,
        "chart": hourly_chart(now),
        "failing": failing_tasks(now),
        "load": executor_load(),
        "series": CHART_SERIES,
    }
