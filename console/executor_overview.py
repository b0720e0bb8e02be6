"""The console's executors at a glance: per executor, its status and health, the runs it holds now and how
fresh their leases are, when the scheduler last checked it, its failures and a sparkline of its last 24 h.

A page of ``PAGE_SIZE`` executors costs the same handful of queries however many executors and runs there are
(``monitoring.selectors``): the page of executors, then one query grouped by executor per figure (running runs
and leases; failures; runs per hour and status), and two summary aggregates. This module only shapes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from console.charts import sparkline
from console.dashboard import CHART_SERIES, buckets_of, hour_starts
from console.display import EMPTY, age_text
from executors.choices import ExecutorStatus
from executors.models import Executor
from monitoring.selectors import (
    executor_counts,
    executors_page,
    failures_by_executor,
    hourly_status_counts_by_executor,
    lease_summary,
    running_by_executor,
)
from scheduler_project.config import tunable

PAGE_SIZE = 50
SPARKLINE_HOURS = 24


@dataclass(frozen=True)
class Leases:
    """The leases of an executor's running runs, as of ``now``."""

    running: int = 0
    expired: int = 0  # run out, not settled yet (the leader's lease sweep asks the executor, then fails it lost)
    unleased: int = 0  # running without a lease
    stalest: datetime | None = None  # the earliest lease_until

    def seconds_left(self, now: datetime) -> float | None:
        """Until the stalest lease runs out; negative: it ran out that long ago. None: no lease held."""
        return None if self.stalest is None else (self.stalest - now).total_seconds()

    def text(self, now: datetime) -> str:
        left = self.seconds_left(now)
        if left is None:
            return "no lease" if self.running else EMPTY
        if left < 0:
            return f"expired {_span(-left)} ago"
        return f"renewed, runs out in {_span(left)}"


@dataclass(frozen=True)
class ExecutorRow:
    executor: Executor
    leases: Leases
    leases_text: str
    checked_age: str  # how long since the scheduler's last health check answered or failed
    check_stale: bool  # online, and not checked for longer than two check intervals and a timeout
    failed: int
    timeout: int
    lost: int
    sparkline: str

    @property
    def failures(self) -> int:
        return self.failed + self.timeout + self.lost

    @property
    def lease_expired(self) -> bool:
        return self.leases.expired > 0


def _span(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def check_stale_after() -> timedelta:
    """How old an online executor's last health check may be before the page flags it: two check intervals
    and a timeout (a round that is late, not one that is merely in progress)."""
    return timedelta(seconds=2 * tunable("HEALTH_CHECK_INTERVAL_SECONDS") + tunable("HEALTH_CHECK_TIMEOUT_SECONDS"))


def check_is_stale(executor: Executor, now: datetime) -> bool:
    """Only online executors are checked (by the leading scheduler): a stale check there means nobody is
    checking, or the checks hang; offline and maintenance executors are left alone on purpose."""
    if executor.status != ExecutorStatus.ONLINE:
        return False
    return executor.last_health_check is None or now - executor.last_health_check > check_stale_after()


def executor_rows(executors: list[Executor], now: datetime) -> list[ExecutorRow]:
    ids = [executor.pk for executor in executors]
    running = running_by_executor(ids, now)
    failures = failures_by_executor(ids, now)
    hourly = hourly_status_counts_by_executor(ids, hour_starts(now, SPARKLINE_HOURS), now)
    rows = []
    for executor in executors:
        held = running.get(executor.pk, {})
        leases = Leases(running=held.get("running", 0), expired=held.get("expired", 0),
                        unleased=held.get("unleased", 0), stalest=held.get("stalest_lease"))
        bad = failures.get(executor.pk, {})
        rows.append(ExecutorRow(
            executor=executor, leases=leases, leases_text=leases.text(now),
            checked_age=age_text(executor.last_health_check, now) if executor.last_health_check else "never checked",
            check_stale=check_is_stale(executor, now),
            failed=bad.get("failed", 0), timeout=bad.get("timeout", 0), lost=bad.get("lost", 0),
            sparkline=sparkline(buckets_of(hourly[executor.pk]), CHART_SERIES,
                                label=f"Executions of {executor.name} per hour over the last 24 h"),
        ))
    return rows


def overview(now: datetime, page: int = 1) -> dict:
    """Everything the executors page renders: page ``page`` (from 1) of the executors, and the totals."""
    page = max(page, 1)
    executors = executors_page((page - 1) * PAGE_SIZE, PAGE_SIZE)
    rows = executor_rows(executors[:PAGE_SIZE], now)
    return {
        "now": now,
        "rows": rows,
        "page": page,
        "has_next": len(executors) > PAGE_SIZE,
        "counts": executor_counts(),
        "leases": lease_summary(now),
        "check_stale_after": check_stale_after(),
        "check_interval": tunable("HEALTH_CHECK_INTERVAL_SECONDS"),
        "lease_seconds": tunable("LEASE_SECONDS"),
    }
