"""Reads behind the live views: executions running right now, and the node and cluster figures of
``/api/v1/scheduler/metrics``."""

from __future__ import annotations

import socket
from datetime import datetime, time, timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.db.models import Count, Q, QuerySet

from executions.choices import TERMINAL_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from scheduling.selectors import active_execution_counts, current_leader

# The first cpu_percent(None) call only starts the measurement (it answers 0.0); start it at import so a
# request reads the usage since the previous request (or since start-up) without blocking to sample.
psutil.cpu_percent(interval=None)


def running_executions() -> QuerySet[TaskExecution]:
    """Running executions, longest-running first, with their task and executor."""
    return (
        TaskExecution.objects.filter(status=ExecutionStatus.RUNNING)
        .select_related("task", "executor")
        .defer("logs", "result", "parameters")
        .order_by("start_time", "id")
    )


def running_seconds(execution: TaskExecution, now: datetime) -> float | None:
    if execution.start_time is None:
        return None
    return round(max(0.0, (now - execution.start_time).total_seconds()), 3)


def node_resources(disk_path: Path | str | None = None) -> dict:
    """CPU (percent since the previous call), memory and disk of the machine serving the request."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path or settings.BASE_DIR))
    return {
        "hostname": socket.gethostname(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count() or 0,
        "memory": {"total_bytes": memory.total, "used_bytes": memory.total - memory.available,
                   "available_bytes": memory.available, "percent": memory.percent},
        "disk": {"path": str(disk_path or settings.BASE_DIR), "total_bytes": disk.total, "used_bytes": disk.used,
                 "free_bytes": disk.free, "percent": disk.percent},
    }


def completed_on_day(now: datetime) -> dict[str, int]:
    """Executions that reached a final status during ``now``'s UTC day (by end_time), per status and total."""
    start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    finals = sorted(TERMINAL_STATUSES)
    row = TaskExecution.objects.filter(
        status__in=finals, end_time__gte=start, end_time__lt=start + timedelta(days=1)
    ).aggregate(total=Count("id"), **{status: Count("id", filter=Q(status=status)) for status in finals})
    return row


def scheduler_metrics(now: datetime) -> dict:
    """``now`` must be UTC (the API passes ``timezone.now()``): "today" is the UTC day."""
    executions = active_execution_counts()
    leader = current_leader(now)
    return {
        "node": node_resources(),
        "executions": {
            "pending": executions["pending"],
            "running": executions["running"],
            "completed_today": completed_on_day(now),
        },
        "leader": (
            {"instance_id": leader.instance_id, "host": leader.host, "since": leader.leader_since or leader.updated_at}
            if leader else None
        ),
        "timestamp": now,
    }
