"""Reads over execution history: filtered lists and aggregates computed in the database."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from executions.choices import ExecutionStatus
from executions.models import TaskExecution

_COUNTED = [
    ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.RUNNING,
    ExecutionStatus.PENDING, ExecutionStatus.SKIPPED, ExecutionStatus.CANCELLED,
]


def percent(part: int, whole: int) -> float:
    return round(part * 100.0 / whole, 2) if whole else 0.0


def status_counts(queryset: QuerySet[TaskExecution]) -> dict:
    """One aggregate query: total, a count per status, and duration figures (seconds) of finished runs."""
    aggregates = {status.value: Count("id", filter=Q(status=status)) for status in _COUNTED}
    row = queryset.aggregate(
        total=Count("id"), avg_duration_ms=Avg("duration_ms"), total_duration_ms=Sum("duration_ms"), **aggregates
    )
    avg_ms = row.pop("avg_duration_ms")
    total_ms = row.pop("total_duration_ms")
    row["avg_duration"] = round(avg_ms / 1000.0, 3) if avg_ms is not None else 0.0
    row["total_duration"] = round(total_ms / 1000.0, 3) if total_ms is not None else 0.0
    return row


def daily_counts(queryset: QuerySet[TaskExecution]) -> list[dict]:
    """Per UTC day of scheduled_time: total, success, failed; oldest day first. Days without runs are absent."""
    rows = (
        queryset.annotate(day=TruncDate("scheduled_time"))
        .values("day")
        .annotate(
            total=Count("id"),
            success=Count("id", filter=Q(status=ExecutionStatus.SUCCESS)),
            failed=Count("id", filter=Q(status=ExecutionStatus.FAILED)),
        )
        .order_by("day")
    )
    return [
        {
            "date": row["day"] if isinstance(row["day"], date) else date.fromisoformat(str(row["day"])),
            "total": row["total"],
            "success": row["success"],
            "failed": row["failed"],
            "success_rate": percent(row["success"], row["total"]),
        }
        for row in rows
    ]


def health_score(success_rate: float, timeout_rate: float) -> float:
    """Success rate minus a double penalty for timeouts: a run that hangs costs more than one that fails fast."""
    return round(max(0.0, success_rate - 2 * timeout_rate), 2)


def task_stats(task_id: str, now: datetime) -> dict:
    """Spec 000 §5.9: 24 h figures, the 90-day health summary, last 7 days, and 90 daily points."""
    history = TaskExecution.objects.filter(task_id=task_id)
    day = status_counts(history.filter(scheduled_time__gte=now - timedelta(hours=24), scheduled_time__lte=now))
    window = history.filter(scheduled_time__gte=now - timedelta(days=90), scheduled_time__lte=now)
    quarter = status_counts(window)
    days = daily_counts(window)
    week_start = (now - timedelta(days=6)).date()
    return {
        "success_rate_24h": percent(day["success"], day["total"]),
        "total_24h": day["total"],
        "success_24h": day["success"],
        "health_90d": {
            "health_score": health_score(
                percent(quarter["success"], quarter["total"]), percent(quarter["timeout"], quarter["total"])
            ) if quarter["total"] else 0.0,
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


def execution_stats(queryset: QuerySet[TaskExecution]) -> dict:
    """Spec 000 §7.2 figures, plus counts for the statuses the spec example leaves out."""
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
        "success_rate": percent(counts["success"], counts["total"]),
        "avg_duration": counts["avg_duration"],
        "total_duration": counts["total_duration"],
    }
