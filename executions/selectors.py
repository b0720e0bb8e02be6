"""Reads over execution history: filtered lists and aggregates computed in the database.

Sized for millions of rows (issue #8, workload 5): a list page walks an index and never sorts or counts the
whole table; aggregates read covering indexes only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Trunc, TruncDate

from core import logtext
from core.timeline import BAR_BUDGET_PER_LANE, TRUNCATION, Window
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduler_project.pagination import Page, PageRequest, counted_page
from tasks.choices import LoadBalanceStrategy
from tasks.models import Task

# /executions/stats without start_time covers this much history before end_time (or now): the figures stay
# exact for the window they state, and cost the same whether the table holds a week or a year. Over the
# bench's 1,000,000 rows (11,000 a day) all history took 2.6-3.6 s a request, 7 days 145 ms, 24 hours 20 ms.
STATS_DEFAULT_WINDOW = timedelta(hours=24)
# The columns of a list row (ExecutionSerializer's fields, its task's and executor's summaries), read as
# values: building model instances cost more than the query (issue #8).
LISTED_COLUMNS = [
    "id", "task_id", "executor_id", "scheduled_time", "start_time", "end_time", "status", "result", "logs",
    "retry_count", "created_at", "trigger_type", "parameters", "duration_ms", "retry_of_id",
    "progress_percent", "progress_step", "progress_updated_at", "workflow_run_id", "node_key",
    "shard", "shard_total",
    "task__name", "task__status", "executor__name", "executor__status",
]

_COUNTED = [
    ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.RUNNING,
    ExecutionStatus.PENDING, ExecutionStatus.SKIPPED, ExecutionStatus.CANCELLED,
]
# Plain strings: an enum member's .value per status per day was a quarter of a task's stats in Python.
_COUNTED_VALUES = [str(status.value) for status in _COUNTED]


def percent(part: int, whole: int) -> float:
    return round(part * 100.0 / whole, 2) if whole else 0.0


def execution_page(filtered: QuerySet[TaskExecution], request: PageRequest) -> Page:
    """Newest scheduled first; the items are dicts of LISTED_COLUMNS. The page's ids come from
    task_executions alone, an index walk; only then are those rows read with their task and executor.
    Ordering the join itself made MariaDB drive it from ``tasks`` and sort all the executions (no answer
    within 10 s over 1,000,000 rows)."""
    ordered = filtered.order_by("-scheduled_time", "-id")
    ids = list(ordered.values_list("id", flat=True)[request.offset : request.offset + request.page_size])
    rows = TaskExecution.objects.filter(pk__in=ids).order_by().values(*LISTED_COLUMNS)
    by_id = {row["id"]: row for row in rows}
    items = [by_id[pk] for pk in ids if pk in by_id]  # a row purged between the two reads is left out
    return counted_page(items, filtered, request)


def _grouped(queryset: QuerySet[TaskExecution], *by: str) -> list[dict]:
    """Row count and duration figures per ``by`` + status. Grouping by status rather than one CASE per
    status keeps the SQL small (its compilation was a third of a stats request) and the index covering."""
    return list(queryset.order_by().values(*by, "status").annotate(
        n=Count("status"), duration_count=Count("duration_ms"), duration_sum=Sum("duration_ms")))


def _figures(groups: list[dict]) -> dict:
    """Folds ``_grouped`` rows into total, a count per status, and duration figures (seconds)."""
    figures = dict.fromkeys(_COUNTED_VALUES, 0)
    duration_count = duration_ms = 0
    for group in groups:
        figures[group["status"]] = figures.get(group["status"], 0) + group["n"]
        duration_count += group["duration_count"]
        duration_ms += group["duration_sum"] or 0
    figures["total"] = sum(group["n"] for group in groups)
    figures["avg_duration"] = round(duration_ms / duration_count / 1000.0, 3) if duration_count else 0.0
    figures["total_duration"] = round(duration_ms / 1000.0, 3)
    return figures


# The outcomes a success rate is taken over: runs that finished (a lost run is failed). Skipped and
# cancelled runs never ran to an end of their own, and pending or running ones have not ended yet.
FINISHED_STATUSES = (ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)


def finished_count(counts: dict) -> int:
    return sum(counts.get(status, 0) for status in FINISHED_STATUSES)


def status_counts(queryset: QuerySet[TaskExecution]) -> dict:
    """One aggregate query: total, a count per status, and duration figures (seconds) of finished runs."""
    return _figures(_grouped(queryset))


def _daily_groups(queryset: QuerySet[TaskExecution]) -> dict[date, list[dict]]:
    """``_grouped`` rows per UTC day of scheduled_time, oldest day first."""
    days: dict[date, list[dict]] = {}
    for group in _grouped(queryset.annotate(day=TruncDate("scheduled_time")), "day"):
        day = group["day"] if isinstance(group["day"], date) else date.fromisoformat(str(group["day"]))
        days.setdefault(day, []).append(group)
    return dict(sorted(days.items()))


def _day_figures(day: date, groups: list[dict]) -> dict:
    counts = {group["status"]: group["n"] for group in groups}  # one group per status
    total, success = sum(counts.values()), counts.get(ExecutionStatus.SUCCESS, 0)
    return {"date": day, "total": total, "success": success, "failed": counts.get(ExecutionStatus.FAILED, 0),
            "success_rate": percent(success, finished_count(counts))}


def health_score(success_rate: float, timeout_rate: float) -> float:
    """Success rate minus a double penalty for timeouts: a run that hangs costs more than one that fails fast."""
    return round(max(0.0, success_rate - 2 * timeout_rate), 2)


def broadcast_runs_of(rows: list[dict]) -> dict[tuple, str]:
    """For the shards among listed rows (LISTED_COLUMNS), their broadcast runs' ids by fire key, in one query
    (none when the page holds no shard)."""
    keys = {fire_key_of(row) for row in rows if row["shard"]}
    if not keys:
        return {}
    match = Q()
    for task_id, scheduled_time, trigger_type, node_key in keys:
        match |= Q(task_id=task_id, scheduled_time=scheduled_time, trigger_type=trigger_type, node_key=node_key)
    parents = TaskExecution.objects.filter(match, retry_count=0, shard=0)
    return {tuple(key): pk for pk, *key in parents.values_list("pk", "task_id", "scheduled_time", "trigger_type",
                                                               "node_key")}


def fire_key_of(row: dict) -> tuple:
    """A listed row's fire key (``TaskExecution.fire_key``) as a tuple."""
    return row["task_id"], row["scheduled_time"], row["trigger_type"], row["node_key"]


_EMPTY_SHARD_COUNTS = {"total": 0, "success": 0, "failed": 0, "timeout": 0}


def task_stats(task_id: str, now: datetime) -> dict:
    """Spec 000 §5.9: 24 h figures, the 90-day health summary, last 7 days, and 90 daily points."""
    history = TaskExecution.objects.filter(task_id=task_id)
    shards = _EMPTY_SHARD_COUNTS
    if Task.objects.filter(pk=task_id, load_balance_strategy=LoadBalanceStrategy.BROADCAST).exists():
        # A broadcast fire counts once (its logical run); its shards are counted apart. Only for broadcast
        # tasks: the shard column is not in the covering indexes the other tasks' figures are read from.
        shards = status_counts(history.filter(shard__gt=0, scheduled_time__gte=now - timedelta(hours=24),
                                              scheduled_time__lte=now))
        history = history.filter(shard=0)
    day = status_counts(history.filter(scheduled_time__gte=now - timedelta(hours=24), scheduled_time__lte=now))
    # One scan of the 90 days serves both the daily points and the 90-day summary.
    daily = _daily_groups(history.filter(scheduled_time__gte=now - timedelta(days=90), scheduled_time__lte=now))
    quarter = _figures([group for groups in daily.values() for group in groups])
    days = [_day_figures(day, groups) for day, groups in daily.items()]
    week_start = (now - timedelta(days=6)).date()
    return {
        "success_rate_24h": percent(day["success"], finished_count(day)),
        "total_24h": day["total"],
        "success_24h": day["success"],
        "shards_24h": {"total": shards["total"], "success": shards["success"], "failed": shards["failed"],
                       "timeout": shards["timeout"]},
        "health_90d": {
            "health_score": health_score(
                percent(quarter["success"], finished_count(quarter)),
                percent(quarter["timeout"], finished_count(quarter)),
            ) if finished_count(quarter) else 0.0,
            "total_count": quarter["total"],
            "success_count": quarter["success"],
            "failed_count": quarter["failed"],
            "timeout_count": quarter["timeout"],
            "avg_duration_seconds": quarter["avg_duration"],
            "period_days": 90,
        },
        "recent_executions": [row for row in reversed(days) if row["date"] >= week_start],
        "daily_stats_90d": [
            {"date": row["date"], "successRate": row["success_rate"], "total": row["total"]} for row in days
        ],
    }


def execution_stats(queryset: QuerySet[TaskExecution], *, start_time: datetime | None, end_time: datetime | None,
                    now: datetime) -> dict:
    """Spec 000 §7.2 figures over ``queryset`` (already filtered, start_time/end_time included), plus counts
    for the statuses the spec example leaves out, and the window they cover, echoed whole: without end_time,
    up to ``now`` (runs fired ahead for a later second are not counted yet); without start_time, the
    STATS_DEFAULT_WINDOW before end_time. All history of a million rows took seconds to scan."""
    if end_time is None:
        end_time = now
        queryset = queryset.filter(scheduled_time__lte=end_time)
    if start_time is None:
        start_time = end_time - STATS_DEFAULT_WINDOW
        queryset = queryset.filter(scheduled_time__gte=start_time)
    counts = status_counts(queryset)
    return {
        "total": counts["total"],
        "success": counts["success"],
        "failed": counts["failed"],
        "timeout": counts["timeout"],
        "running": counts["running"],
        "pending": counts["pending"],
        "skipped": counts["skipped"],
        "cancelled": counts["cancelled"],
        "success_rate": percent(counts["success"], finished_count(counts)),
        "avg_duration": counts["avg_duration"],
        "total_duration": counts["total_duration"],
        "start_time": start_time,
        "end_time": end_time,
    }


@dataclass(frozen=True)
class LogTail:
    lines: list[str]
    total_lines: int
    truncated: bool


def tail_logs(execution: TaskExecution, lines: int = 100) -> LogTail:
    """The last ``lines`` lines of the logs (the truncation marker is not a line), their total count, and
    whether earlier output was dropped by the cap."""
    dropped, body = logtext.split_marker(execution.logs or "")
    all_lines = body.split("\n") if body else []
    return LogTail(lines=all_lines[-lines:] if lines > 0 else [], total_lines=len(all_lines),
                   truncated=dropped > 0)


# --- the console's timeline: what ran when, per task ----------------------------------------------------------

# The busiest lanes are ranked over at most this many of the window's newest runs: over a million-row window
# an exact GROUP BY costs seconds, the newest runs through the scheduled_time index a few milliseconds.
RANKING_SAMPLE = 20_000


@dataclass(frozen=True)
class TimelineFilters:
    task_ids: tuple[str, ...] | None = None  # None: every task
    executor_ids: tuple[str, ...] | None = None  # None: any executor
    statuses: tuple[str, ...] = ()  # empty: every status
    lanes: int = 20


@dataclass(frozen=True)
class LaneRuns:
    """One lane's runs in the window: each run (``bars``) when few, else counts per cell (``cells``)."""

    task_id: str
    total: int
    bars: list[dict]
    groups: list[tuple[datetime, str, int]]


def _window_runs(window: Window, filters: TimelineFilters) -> QuerySet[TaskExecution]:
    runs = TaskExecution.objects.filter(scheduled_time__gte=window.start, scheduled_time__lte=window.now)
    if filters.task_ids is not None:
        runs = runs.filter(task_id__in=filters.task_ids)
    if filters.executor_ids is not None:
        runs = runs.filter(executor_id__in=filters.executor_ids)
    if filters.statuses:
        runs = runs.filter(status__in=filters.statuses)
    return runs


def busiest_tasks(window: Window, filters: TimelineFilters) -> list[str]:
    """Up to ``filters.lanes`` task ids, busiest in the window first (ranked over ``RANKING_SAMPLE`` newest
    runs at most)."""
    newest = _window_runs(window, filters).order_by("-scheduled_time").values_list("task_id", flat=True)
    return [task_id for task_id, _ in Counter(newest[:RANKING_SAMPLE]).most_common(filters.lanes)]


def lane_runs(window: Window, task_ids: list[str], filters: TimelineFilters) -> dict[str, LaneRuns]:
    """The runs of ``task_ids`` in the window, one bar each for lanes within ``BAR_BUDGET_PER_LANE`` runs,
    grouped by minute or hour and status for busier ones; three queries whatever the number of rows."""
    runs = _window_runs(window, filters).filter(task_id__in=task_ids)
    totals = dict(runs.values_list("task_id").annotate(n=Count("id")).order_by())
    sparse = [task_id for task_id, n in totals.items() if n <= BAR_BUDGET_PER_LANE]
    busy = [task_id for task_id, n in totals.items() if n > BAR_BUDGET_PER_LANE]
    lanes = {task_id: LaneRuns(task_id, totals.get(task_id, 0), [], []) for task_id in task_ids}
    if sparse:
        for row in runs.filter(task_id__in=sparse).values(
                "id", "task_id", "status", "scheduled_time", "start_time", "end_time", "executor__name"):
            lanes[row["task_id"]].bars.append(row)
    if busy:
        grouped = (runs.filter(task_id__in=busy)
                   .annotate(bucket=Trunc("scheduled_time", TRUNCATION[window.zoom]))
                   .values_list("task_id", "bucket", "status").annotate(n=Count("id")).order_by())
        for task_id, bucket, status, n in grouped:
            lanes[task_id].groups.append((bucket, status, n))
    return lanes


def running_since_before(window: Window, task_ids: list[str]) -> list[dict]:
    """Runs of ``task_ids`` still running that were scheduled before the window: drawn from its left edge."""
    return list(TaskExecution.objects.filter(
        Q(status=ExecutionStatus.RUNNING) & Q(scheduled_time__lt=window.start) & Q(task_id__in=task_ids)
    ).values("id", "task_id", "status", "scheduled_time", "start_time", "end_time", "executor__name")[:1000])
