"""Executor health checks (spec 002 §4.2.2): GET health_check_url on an interval; 3 failures in a row
mark an executor unhealthy, 2 successes in a row healthy again. Unhealthy executors get no dispatches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction

from alerts.outbox import record_executor_health
from core.policy import HealthState, next_health
from executors.choices import ExecutorStatus
from executors.client import Unreachable, get
from executors.models import Executor
from executors.netguard import RefusedURL
from executors.services import default_health_url
from scheduler_project.config import tunable

logger = logging.getLogger(__name__)

# How often, between rounds, the executors registered since the last check are looked for.
NEWCOMERS_SCAN_SECONDS = 1.0


def health_url(executor: Executor) -> str:
    return executor.health_check_url or default_health_url(executor.base_url)


def probe(executor: Executor, timeout: float) -> bool:
    """One signed GET of the executor's health URL; True on 2xx. A refused address is a failed check."""
    try:
        response = get(executor, health_url(executor), timeout=timeout)
    except RefusedURL as exc:
        logger.warning("health check of executor %s (%s) not sent: %s",
                       executor.name, executor.instance_id, exc.reason)
        return False
    except Unreachable:
        return False
    return response.ok


def record_check(executor: Executor, *, ok: bool, now: datetime) -> HealthState:
    """Apply one check's outcome to the executor's counters and health flag."""
    state = next_health(
        HealthState(executor.is_healthy, executor.health_check_failures, executor.health_check_successes),
        ok=ok, failure_threshold=tunable("HEALTH_FAILURE_THRESHOLD"),
        recovery_threshold=tunable("HEALTH_RECOVERY_THRESHOLD"),
    )
    with transaction.atomic():  # the flip and its alert event commit together
        Executor.objects.filter(pk=executor.pk).update(
            is_healthy=state.is_healthy, health_check_failures=state.failures,
            health_check_successes=state.successes, last_health_check=now,
        )
        if state.is_healthy != executor.is_healthy:
            record_executor_health(executor, healthy=state.is_healthy, failures=state.failures, now=now)
    if state.is_healthy != executor.is_healthy:
        logger.warning("executor %s (%s) is now %s", executor.name, executor.instance_id,
                       "healthy" if state.is_healthy else f"unhealthy after {state.failures} failed checks")
    return state


class HealthChecker:
    """Runs a round of checks every HEALTH_CHECK_INTERVAL_SECONDS, concurrently, never overlapping rounds.

    ``probe(executor, timeout)`` is swappable for tests.
    """

    probe = staticmethod(probe)

    def __init__(self, *, clock: Callable[[], datetime], pool: ThreadPoolExecutor) -> None:
        self.clock = clock
        self.pool = pool
        self._next_round: datetime | None = None
        self._next_newcomers: datetime | None = None
        self._round: list[Future] = []

    def check_health(self, now: datetime) -> int:
        """Step: start a round if one is due and the previous has finished; between rounds, check the
        executors that have just registered (never checked since) at once (spec 002: 注册后立即启动健康检查).
        Returns checks started."""
        if any(not future.done() for future in self._round):
            return 0
        online = Executor.objects.filter(status=ExecutorStatus.ONLINE)
        if self._next_round is not None and now < self._next_round:
            if self._next_newcomers is not None and now < self._next_newcomers:
                return 0
            self._next_newcomers = now + timedelta(seconds=NEWCOMERS_SCAN_SECONDS)
            online = online.filter(last_health_check__isnull=True)
        else:
            self._next_round = now + timedelta(seconds=tunable("HEALTH_CHECK_INTERVAL_SECONDS"))
        executors = list(online)
        self._round = [self.pool.submit(self._check, executor) for executor in executors]
        return len(self._round)

    def _check(self, executor: Executor) -> None:
        close_old_connections()
        ok = self.probe(executor, tunable("HEALTH_CHECK_TIMEOUT_SECONDS"))
        record_check(executor, ok=ok, now=self.clock())
