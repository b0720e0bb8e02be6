"""Read models of the cluster: instances and leadership, counts, the health summary, the executions running
now and the node and cluster figures of ``/api/v1/scheduler/metrics``. The status, health, running and metrics
endpoints, the Prometheus gauges and the console's dashboard, executors and cluster pages all read through
here."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import TruncHour

from executions.choices import TERMINAL_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from executions.selectors import percent
from executors.choices import ExecutorStatus
from executors.models import Executor
from scheduler_project.config import tunable
from scheduling.models import LeaderTerm, SchedulerInstance
from tasks.choices import TaskStatus
from tasks.models import Task


def _fresh_after(now: datetime) -> datetime:
    return now - timedelta(seconds=tunable("INSTANCE_STALE_SECONDS"))


def task_counts() -> dict[str, int]:
    return Task.objects.aggregate(
        total_tasks=Count("id", filter=~Q(status=TaskStatus.DELETED)),
        active_tasks=Count("id", filter=Q(status=TaskStatus.ACTIVE)),
        paused_tasks=Count("id", filter=Q(status=TaskStatus.PAUSED)),
    )


def executor_counts() -> dict[str, int]:
    return Executor.objects.aggregate(
        total=Count("id"),
        online=Count("id", filter=Q(status=ExecutorStatus.ONLINE)),
        offline=Count("id", filter=Q(status=ExecutorStatus.OFFLINE)),
        maintenance=Count("id", filter=Q(status=ExecutorStatus.MAINTENANCE)),
        healthy=Count("id", filter=Q(status=ExecutorStatus.ONLINE, is_healthy=True)),
    )


def active_execution_counts() -> dict[str, int]:
    return TaskExecution.objects.filter(status__in=[ExecutionStatus.RUNNING, ExecutionStatus.PENDING]).aggregate(
        running=Count("id", filter=Q(status=ExecutionStatus.RUNNING)),
        pending=Count("id", filter=Q(status=ExecutionStatus.PENDING)),
    )


def current_leader(now: datetime) -> SchedulerInstance | None:
    """The instance flagged leader with a fresh heartbeat; a stale flag is a leader that died."""
    return (
        SchedulerInstance.objects.filter(is_leader=True, updated_at__gte=_fresh_after(now))
        .order_by("-leader_since")
        .first()
    )


def cluster_status(now: datetime) -> dict:
    """Spec 000 §8.2."""
    instances = list(SchedulerInstance.objects.order_by("-is_leader", "instance_id"))
    fresh = _fresh_after(now)
    leader = current_leader(now)
    tasks, executors, executions = task_counts(), executor_counts(), active_execution_counts()
    return {
        "instances": instances,
        "leader_info": (
            {"instance_id": leader.instance_id, "host": leader.host, "since": leader.leader_since or leader.updated_at}
            if leader else None
        ),
        "cluster_status": {
            "total_instances": len(instances),
            "healthy_instances": sum(1 for instance in instances if instance.updated_at >= fresh),
            "has_leader": leader is not None,
        },
        "system_metrics": {
            **tasks,
            "total_executors": executors["total"],
            "online_executors": executors["online"],
            "healthy_executors": executors["healthy"],
            "running_executions": executions["running"],
            "pending_executions": executions["pending"],
        },
        "timestamp": now,
    }


def database_probe() -> int:
    """Milliseconds for a trivial round trip; raises if the database is unreachable."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return round((time.perf_counter() - started) * 1000)


def health(now: datetime) -> dict:
    """Spec 000 §8.1. Degraded when no scheduler leads or no executor is online; the database is probed."""
    response_time = database_probe()
    leader = current_leader(now)
    executors = executor_counts()
    tasks = task_counts()
    scheduler_ok = leader is not None
    executors_ok = executors["online"] > 0
    return {
        "status": "healthy" if scheduler_ok and executors_ok else "degraded",
        "timestamp": now,
        "components": {
            "database": {"status": "healthy", "response_time": response_time},
            "scheduler": {
                "status": "healthy" if scheduler_ok else "unhealthy",
                "is_leader": scheduler_ok,
                "leader_instance_id": leader.instance_id if leader else None,
                "active_tasks": tasks["active_tasks"],
            },
            "executors": {
                "status": "healthy" if executors_ok else "unhealthy",
                "total": executors["total"],
                "online": executors["online"],
                "offline": executors["offline"] + executors["maintenance"],
                "healthy": executors["healthy"],
            },
        },
    }


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
    start = datetime.combine(now.date(), clock_time.min, tzinfo=now.tzinfo)
    finals = sorted(TERMINAL_STATUSES)
    row = TaskExecution.objects.filter(
        status__in=finals, end_time__gte=start, end_time__lt=start + timedelta(days=1)
    ).aggregate(total=Count("id"), **{status: Count("id", filter=Q(status=status)) for status in finals})
    return row


def scheduler_metrics(now: datetime) -> dict:
    """``now`` must be UTC (the API passes ``utc_now()``): "today" is the UTC day."""
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


# --- the console's dashboard: the last 24 hours --------------------------------------------------------------

WINDOW = timedelta(hours=24)
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)


def last_day(now: datetime) -> QuerySet[TaskExecution]:
    return TaskExecution.objects.filter(scheduled_time__gte=now - WINDOW, scheduled_time__lte=now)


def hourly_status_counts(hour_starts: list[datetime], now: datetime) -> dict[datetime, dict[str, int]]:
    """Executions per status for each hour starting at ``hour_starts`` (by ``scheduled_time``, up to ``now``)."""
    rows = (
        TaskExecution.objects.filter(scheduled_time__gte=hour_starts[0], scheduled_time__lte=now)
        .annotate(hour=TruncHour("scheduled_time"))
        .values("hour", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    counts: dict[datetime, dict[str, int]] = {start: {} for start in hour_starts}
    for row in rows:
        hour = _hour_of(row)
        if hour in counts:
            counts[hour][row["status"]] = row["count"]
    return counts


def _hour_of(row: dict) -> datetime:
    return row["hour"].replace(minute=0, second=0, microsecond=0)


def failing_tasks(now: datetime, limit: int = 5) -> list[dict]:
    """The tasks with the most failed or timed-out runs in the last 24 h, with their totals."""
    rows = (
        last_day(now)
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


# --- the console's executors page: one grouped query per figure, for a page of executors -------------------
# Each figure below is one query grouped by executor over the executors of one page (``executor_ids``), never
# a query per executor. The running runs are read on (executor, status); the last 24 h on (executor, status,
# scheduled_time), which holds both grouped history reads (executions migration 0009).

def executors_page(offset: int, limit: int) -> list[Executor]:
    """Executors in name order from ``offset``: ``limit`` of them, and one more when another page follows."""
    return list(Executor.objects.order_by("name", "instance_id", "pk")
                .defer("metadata", "secret", "previous_secret")[offset:offset + limit + 1])


def running_by_executor(executor_ids: list[str], now: datetime) -> dict[str, dict]:
    """Per executor, its running executions: ``running`` (how many), ``stalest_lease`` (the earliest
    ``lease_until``: the lease closest to running out, or longest run out), ``expired`` (leases run out before
    ``now``: runs the leader's lease sweep has not settled yet) and ``unleased`` (running without a lease).
    Executors running nothing are left out."""
    rows = (
        TaskExecution.objects.filter(executor_id__in=executor_ids, status=ExecutionStatus.RUNNING)
        .values("executor_id")
        .annotate(running=Count("id"), stalest_lease=Min("lease_until"),
                  expired=Count("id", filter=Q(lease_until__lt=now)),
                  unleased=Count("id", filter=Q(lease_until__isnull=True)))
        .order_by()
    )
    return {row.pop("executor_id"): row for row in rows}


def failures_by_executor(executor_ids: list[str], now: datetime) -> dict[str, dict[str, int]]:
    """Per executor, its runs of the last 24 h (by ``scheduled_time``) that ended badly: ``failed`` (by the
    executor's word), ``timeout`` and ``lost`` (failed by the scheduler's verdict: the lease ran out or the
    executor no longer held the run; ``executions.services.lose_run`` is the only writer of a failed run
    ``ended_by_scheduler``, and a late result applied over it clears the flag). Executors without failures
    are left out."""
    lost = Q(status=ExecutionStatus.FAILED, ended_by_scheduler=True)
    rows = (
        last_day(now).filter(executor_id__in=executor_ids, status__in=FAILED_STATUSES)
        .values("executor_id")
        .annotate(failed=Count("id", filter=Q(status=ExecutionStatus.FAILED, ended_by_scheduler=False)),
                  timeout=Count("id", filter=Q(status=ExecutionStatus.TIMEOUT)),
                  lost=Count("id", filter=lost))
        .order_by()
    )
    return {row.pop("executor_id"): row for row in rows}


def hourly_status_counts_by_executor(
    executor_ids: list[str], hour_starts: list[datetime], now: datetime,
) -> dict[str, dict[datetime, dict[str, int]]]:
    """Per executor, its executions per status for each hour starting at ``hour_starts`` (by
    ``scheduled_time``, up to ``now``); every executor of ``executor_ids`` has every hour, empty or not."""
    rows = (
        TaskExecution.objects.filter(executor_id__in=executor_ids, status__in=ExecutionStatus.values,
                                     scheduled_time__gte=hour_starts[0], scheduled_time__lte=now)
        .annotate(hour=TruncHour("scheduled_time"))
        .values("executor_id", "hour", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    counts = {executor_id: {start: {} for start in hour_starts} for executor_id in executor_ids}
    for row in rows:
        hours = counts.get(row["executor_id"], {})
        hour = _hour_of(row)
        if hour in hours:
            hours[hour][row["status"]] = row["count"]
    return counts


def lease_summary(now: datetime) -> dict[str, int]:
    """Over every running execution: ``running``, ``expired`` (leases run out before ``now``) and
    ``executors_expired`` (executors holding at least one of those)."""
    ran_out = Q(lease_until__lt=now)
    return TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).aggregate(
        running=Count("id"), expired=Count("id", filter=ran_out),
        executors_expired=Count("executor_id", filter=ran_out, distinct=True),
    )


# --- the console's cluster page ---------------------------------------------------------------------------

def scheduler_nodes() -> list[SchedulerInstance]:
    """Every scheduler node's row (its heartbeat, leadership, term and measured clock offset), leader first."""
    return list(SchedulerInstance.objects.order_by("-is_leader", "instance_id"))


def leadership_terms() -> list[LeaderTerm]:
    """The fencing terms, one per leader lock (one in a normal installation): the current term and its holder."""
    return list(LeaderTerm.objects.order_by("name"))
