"""What the console's dashboard shows, read in a fixed handful of queries whatever the size of the history.

Every figure is read through ``monitoring.selectors`` (cluster, counts, the per-hour and per-task breakdowns,
each a single grouped query over the last 24 hours on the indexed ``scheduled_time``),
``executions.selectors`` (success figures) and ``alerts.selectors`` (open incidents); this module only shapes
them for the page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from alerts.selectors import alert_counts
from console.charts import STATUS_COLOURS, Bucket, Series, stacked_bars
from console.cluster import instance_rows
from console.display import age_text
from executions.choices import ExecutionStatus
from executions.selectors import execution_stats
from monitoring.selectors import WINDOW, cluster_status, executor_load, failing_tasks, hourly_status_counts, last_day

# Bottom to top in each stacked bar.
CHART_SERIES = [
    Series(status.value, status.label, STATUS_COLOURS[status.value])
    for status in (
        ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED, ExecutionStatus.RUNNING, ExecutionStatus.PENDING,
    )
]


def hour_starts(now: datetime, hours: int = 24) -> list[datetime]:
    """The starts of the last ``hours`` hours, oldest first; the last is the current hour."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]


def buckets_of(counts: dict[datetime, dict[str, int]]) -> list[Bucket]:
    """Chart buckets from counts per status per hour start, in the order given."""
    return [
        Bucket(label=f"{start:%H}h", title=f"{start:%Y-%m-%d %H:00}–{start + timedelta(hours=1):%H:00} UTC",
               values=values)
        for start, values in counts.items()
    ]


def hourly_buckets(now: datetime, hours: int = 24) -> list[Bucket]:
    """Executions per hour of ``scheduled_time`` by status, oldest hour first; the last is the current hour."""
    return buckets_of(hourly_status_counts(hour_starts(now, hours), now))


def hourly_chart(now: datetime) -> str:
    return stacked_bars(hourly_buckets(now), CHART_SERIES, label="Executions per hour over the last 24 h, by status")


def dashboard(now: datetime) -> dict:
    """Everything the dashboard panel renders."""
    cluster = cluster_status(now)
    day = execution_stats(last_day(now), start_time=now - WINDOW, end_time=now, now=now)
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
        "incidents": alert_counts(),
        "load": executor_load(),
        "series": CHART_SERIES,
    }
