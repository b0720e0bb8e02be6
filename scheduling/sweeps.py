"""Sweeps: running executions past their timeout, and those whose lease ran out (their executor is gone).

Neither is declared on the scheduler's word alone. Each sweep finds its runs on the loop thread, then a
worker asks their executor (``status_query``, one request per executor) and settles each run by the answer:

- the executor finished it: its result is applied, as the executor's own report (late-result rules);
- it still holds it: a lease is renewed; a timeout stands (the deadline has passed) and it is told to stop;
- it does not hold it, or cannot be reached: ``timeout``, or ``failed`` as *lost* (README "Leases"), and the
  retry policy applies. Both are marked ``ended_by_scheduler``: a result finished within the deadline
  that arrives later may still be applied.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction

from core.leases import LeaseAnswer, LeaseVerdict, expired_lease_verdict, renewed_lease_until
from executions.choices import ExecutionStatus
from executions.metrics import count_timeout
from executions.models import TaskExecution
from executions.services import apply_callbacks, finish, logs_with, lose_run, notify_executor_stop, transition
from executors.client import post_json
from executors.models import Executor
from scheduler_project.config import tunable
from scheduling.leader import Deposed
from scheduling.status_query import UNREACHABLE, RunState, ask_executor

logger = logging.getLogger(__name__)

Settle = Callable[[TaskExecution, RunState, datetime], None]


class Sweeper:
    """``transport`` is the signed POST used to ask executors (tests swap it); ``busy()`` names the runs the
    leader is still dispatching (left alone: their lease or deadline may not have started for real)."""

    transport = staticmethod(post_json)

    def __init__(self, *, pool: ThreadPoolExecutor, busy: Callable[[], set[str]],
                 fenced: Callable[[], AbstractContextManager] = transaction.atomic) -> None:
        self.pool = pool
        self.busy = busy
        self.fenced = fenced  # the leader's term-checked transaction: a deposed leader's verdict is refused
        self._asking: set[str] = set()  # runs whose executor is being asked (worker threads)
        self._lock = threading.Lock()

    def sweep_timeouts(self, now: datetime) -> int:
        """Step: running executions past deadline + grace become ``timeout`` (unless their executor hands
        over a result); their executors get a stop."""
        grace = timedelta(seconds=tunable("TIMEOUT_GRACE_SECONDS"))
        return self._sweep(TaskExecution.objects.filter(status=ExecutionStatus.RUNNING, deadline__lt=now - grace),
                           self._settle_timeout, now)

    def sweep_leases(self, now: datetime) -> int:
        """Step: running executions whose lease expired are lost (unless their executor, asked, still holds
        them or hands over a result)."""
        return self._sweep(TaskExecution.objects.filter(status=ExecutionStatus.RUNNING, lease_until__lt=now),
                           self._settle_lease, now)

    def _sweep(self, queryset, settle: Settle, now: datetime) -> int:
        with self._lock:
            skip = self.busy() | self._asking
        # The runs being dispatched or asked about are left out here, not in SQL: a burst has thousands in
        # flight, and a NOT IN of all of them, twice a tick, cost the loop more than the sweeps' finds (mostly
        # none). The ids come from the (status, deadline / lease_until) index alone.
        limit = tunable("FIRE_BATCH_SIZE")
        due = [pk for pk in queryset.values_list("pk", flat=True)[: limit + len(skip)] if pk not in skip][:limit]
        rows = list(queryset.filter(pk__in=due).select_related("task", "executor")) if due else []
        by_executor: dict[str | None, list[TaskExecution]] = defaultdict(list)
        for row in rows:
            by_executor[row.executor_id].append(row)
        with self._lock:
            self._asking.update(row.pk for row in rows)
        for runs in by_executor.values():
            self.pool.submit(self._ask_then_settle, runs, settle, now)
        return len(rows)

    def _ask_then_settle(self, runs: list[TaskExecution], settle: Settle, now: datetime) -> None:
        """Worker: one question to the runs' executor, then each run settled as of the sweep's ``now``."""
        try:
            close_old_connections()
            executor: Executor | None = runs[0].executor
            states = (ask_executor(executor, runs, transport=self.transport) if executor is not None
                      else dict.fromkeys((run.pk for run in runs), UNREACHABLE))
            for run in runs:
                try:
                    settle(run, states[run.pk], now)
                except Deposed as exc:
                    logger.info("execution %s left to the new leader: %s", run.pk, exc, extra=run.log_extra())
                except Exception:
                    logger.exception("settling execution %s failed", run.pk, extra=run.log_extra())
        finally:
            with self._lock:
                self._asking.difference_update(run.pk for run in runs)

    @staticmethod
    def _apply_result(run: TaskExecution, state: RunState, now: datetime) -> None:
        [verdict] = apply_callbacks(executor_id=run.executor_id, reports=[state.report], now=now)
        logger.info("execution %s: its executor handed over its %s result when asked (%s)", run.pk,
                    state.report.status, verdict.outcome, extra=run.log_extra())

    def _settle_timeout(self, run: TaskExecution, state: RunState, now: datetime) -> None:
        if state.answer == LeaseAnswer.FINISHED:
            self._apply_result(run, state, now)
            return
        line = f"timed out: no result within {run.task.timeout_seconds}s"
        with self.fenced():
            timed_out = finish(run, ExecutionStatus.TIMEOUT, now=now, expected=[ExecutionStatus.RUNNING],
                               matching={"attempt": run.attempt}, ended_by_scheduler=True,
                               logs=logs_with(run.logs, line))
        if timed_out:
            count_timeout()
            logger.warning("execution %s of task %s %s", run.pk, run.task.name, line, extra=run.log_extra())
            if state.answer != LeaseAnswer.UNREACHABLE:
                notify_executor_stop(run.pk)

    def _settle_lease(self, run: TaskExecution, state: RunState, now: datetime) -> None:
        verdict = expired_lease_verdict(state.answer)
        if verdict == LeaseVerdict.APPLY_RESULT:
            self._apply_result(run, state, now)
        elif verdict == LeaseVerdict.RENEW:
            transition(run, ExecutionStatus.RUNNING, expected=[ExecutionStatus.RUNNING],
                       matching={"attempt": run.attempt},
                       lease_until=renewed_lease_until(now, tunable("LEASE_SECONDS")))
        else:
            executor = run.executor.instance_id if run.executor is not None else "its executor"
            asked = "unreachable" if state.answer == LeaseAnswer.UNREACHABLE else "it does not hold the run"
            with self.fenced():
                lose_run(run, now=now, why=f"the lease ran out at {run.lease_until:%Y-%m-%d %H:%M:%S} UTC "
                                           f"without renewal from {executor} (asked: {asked})")
            if state.answer != LeaseAnswer.UNREACHABLE:
                notify_executor_stop(run.pk)
