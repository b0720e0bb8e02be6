"""Dispatch: hand pending executions to executors, and sweep runs that outlived their timeout.

The leader's loop thread decides (which execution, which executors in which order: one ranking pass per
step, its state saved in one transaction); a bounded pool of
worker threads does the HTTP, so one slow executor never delays the others. The loop claims a step's
executions (pending -> running) before any worker POSTs, so an executor's callback always finds it running.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import requests
from django.db import close_old_connections
from django.db.models import Count

from executions.choices import ExecutionStatus
from executions.live import appended_logs
from executions.models import TaskExecution
from executions.services import finish, transition, transition_many
from executors.models import Executor
from executors.netguard import RefusedURL
from loadbalance.services import Rankings, record_failover
from scheduling.config import tunable
from scheduling.executor_http import post_json
from scheduling.metrics import count_timeout, observe_dispatch_latency
from scheduling.policy import deadline_for, may_dispatch
from scheduling.stop import notify_executor_stop
from tasks.choices import ExecutionMode

logger = logging.getLogger(__name__)
# Claimed executions waiting for a free worker, at most this many per worker: a leader killed mid-queue
# leaves its claimed, never-posted runs to the timeout sweep, and a run's timeout counts from its claim.
QUEUED_PER_WORKER = 32


def callback_url(execution_id: str) -> str:
    return f"{tunable('CALLBACK_BASE_URL').rstrip('/')}/api/v1/executions/{execution_id}/callback"


def execute_payload(execution: TaskExecution) -> dict:
    task = execution.task
    return {
        "execution_id": execution.pk,
        "task_id": task.pk,
        "task_name": task.name,
        "parameters": execution.parameters or {},
        "timeout_seconds": task.timeout_seconds,
        "retry_count": execution.retry_count,
        "scheduled_time": execution.scheduled_time.isoformat().replace("+00:00", "Z"),
        "callback_url": callback_url(execution.pk),
    }


class Dispatcher:
    """Owns the worker pool and the set of executions being dispatched right now.

    ``transport(executor, url, payload, timeout=)`` is the signed, address-checked HTTP POST used to reach
    executors (``executor_http.post_json``); tests swap it without patching.
    """

    transport = staticmethod(post_json)

    def __init__(self, *, clock: Callable[[], datetime], workers: int, rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - load balancing, not security
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch")
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    # --- loop-thread steps ------------------------------------------------------------------------

    def dispatch_pending(self, now: datetime) -> int:
        """Step: start dispatching every pending execution whose time has come. Returns how many."""
        ready = self._ready(now)
        if not ready:
            return 0
        rankings = Rankings([execution.task for execution in ready], self.rng)
        ranked = [(execution, rankings.rank(execution.task)) for execution in ready]
        # Saved before any worker starts: a failover recorded by a worker must land after this step's state.
        rankings.save(now)
        for execution, ranking in ranked:
            if not ranking.executors:
                self._fail_unassignable(execution, ranking.assigned, now)
        claimed = self._claim([(execution, ranking.executors) for execution, ranking in ranked if ranking.executors])
        for execution, ranking in ranked:  # in priority order
            if execution.pk in claimed:
                with self._lock:
                    self._in_flight.add(execution.pk)
                self.pool.submit(self._deliver_safely, execution, ranking.executors)
        return len(ranked)

    def _claim(self, ranked: list[tuple[TaskExecution, list[Executor]]]) -> set[str]:
        """Claim the step's executions (pending -> running) before any POST, so an executor's callback always
        finds its run running: one UPDATE per (first executor, timeout) instead of a COMMIT per execution on
        the workers. The timeout counts from the claim. Returns the ids claimed; a run stopped meanwhile is
        left alone."""
        start = self.clock()
        groups: dict[tuple[str, int], list[TaskExecution]] = defaultdict(list)
        for execution, executors in ranked:
            groups[(executors[0].pk, execution.task.timeout_seconds)].append(execution)
        claimed: set[str] = set()
        for (executor_id, timeout), executions in groups.items():
            changes = {"executor_id": executor_id, "start_time": start, "deadline": deadline_for(start, timeout)}
            moved = transition_many([e.pk for e in executions], ExecutionStatus.RUNNING,
                                    expected=ExecutionStatus.PENDING, **changes)
            for execution in executions:
                if execution.pk in moved:
                    execution.status = ExecutionStatus.RUNNING
                    for field, value in changes.items():
                        setattr(execution, field, value)
            claimed |= moved
        return claimed

    def _ready(self, now: datetime) -> list[TaskExecution]:
        """Pending executions due at ``now``, not already being dispatched, highest task priority first,
        minus the sequential runs that must wait for the one in progress."""
        with self._lock:
            busy = set(self._in_flight)
        batch = min(tunable("FIRE_BATCH_SIZE"), self.workers * QUEUED_PER_WORKER - len(busy))
        if batch <= 0:
            return []
        rows = list(
            TaskExecution.objects.filter(status=ExecutionStatus.PENDING, dispatch_after__lte=now)
            .select_related("task")
            .order_by("-task__priority", "dispatch_after", "scheduled_time", "id")[: batch + len(busy)]
        )
        rows = [row for row in rows if row.pk not in busy][:batch]
        running = self._running_sequential(rows, busy)
        ready = []
        for execution in rows:
            task = execution.task
            if not may_dispatch(task.execution_mode, trigger_type=execution.trigger_type,
                                running=running.get(task.pk, 0)):
                continue  # waits for the run in progress (sequential mode)
            if task.execution_mode == ExecutionMode.SEQUENTIAL:
                running[task.pk] = running.get(task.pk, 0) + 1
            ready.append(execution)
        return ready

    def _running_sequential(self, rows: list[TaskExecution], busy: set[str]) -> dict[str, int]:
        """Running (or being dispatched) executions per sequential task in this batch."""
        task_ids = {row.task_id for row in rows if row.task.execution_mode == ExecutionMode.SEQUENTIAL}
        if not task_ids:
            return {}
        counts = dict(
            TaskExecution.objects.filter(task_id__in=task_ids, status=ExecutionStatus.RUNNING)
            .values("task_id").annotate(n=Count("id")).values_list("task_id", "n")
        )
        for row in TaskExecution.objects.filter(pk__in=busy, task_id__in=task_ids).values("task_id"):
            counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
        return counts

    def _fail_unassignable(self, execution: TaskExecution, assigned: int, now: datetime) -> None:
        reason = (f"no eligible executor: {assigned} assigned, none online and healthy"
                  if assigned else "no eligible executor: none is assigned to this task")
        logger.warning("execution %s of task %s failed: %s", execution.pk, execution.task.name, reason,
                       extra=execution.log_extra())
        finish(execution, ExecutionStatus.FAILED, now=now, logs=appended_logs(execution.logs, reason))

    def sweep_timeouts(self, now: datetime) -> int:
        """Step: running executions past deadline + grace become ``timeout``; their executors get a stop."""
        grace = timedelta(seconds=tunable("TIMEOUT_GRACE_SECONDS"))
        overdue = list(
            TaskExecution.objects.filter(status=ExecutionStatus.RUNNING, deadline__lt=now - grace)
            .select_related("task")[: tunable("FIRE_BATCH_SIZE")]
        )
        for execution in overdue:
            line = f"timed out: no result within {execution.task.timeout_seconds}s"
            if finish(execution, ExecutionStatus.TIMEOUT, now=now, logs=appended_logs(execution.logs, line)):
                count_timeout()
                logger.warning("execution %s of task %s %s", execution.pk, execution.task.name, line,
                               extra=execution.log_extra())
                self.pool.submit(notify_executor_stop, execution.pk)
        return len(overdue)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no dispatch is in flight (or ``timeout`` passes). True if idle."""
        deadline = time.monotonic() + timeout
        while self.in_flight():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=not wait)

    # --- worker threads ---------------------------------------------------------------------------

    def _deliver_safely(self, execution: TaskExecution, executors: list[Executor]) -> None:
        try:
            close_old_connections()
            self.deliver(execution, executors)
        except Exception:
            logger.exception("dispatch of execution %s crashed", execution.pk, extra=execution.log_extra())
        finally:
            with self._lock:
                self._in_flight.discard(execution.pk)

    def deliver(self, execution: TaskExecution, executors: list[Executor]) -> bool:
        """POST the claimed (running) execution to each executor in turn until one accepts (2xx).

        Returns True if an executor accepted. If none does, the run fails and the retry policy decides.
        """
        start = execution.start_time
        payload = execute_payload(execution)
        refusals: list[str] = []
        for position, executor in enumerate(executors):
            if position and not transition(execution, ExecutionStatus.RUNNING, expected=[ExecutionStatus.RUNNING],
                                           executor_id=executor.pk):
                return False  # finished meanwhile (stop, timeout)
            refusal = self._post(executor, payload)
            if refusal is None:
                observe_dispatch_latency((self.clock() - start).total_seconds())
                if position:
                    record_failover(execution.task, executor.pk)
                return True
            refusals.append(f"{executor.name} ({executor.instance_id}): {refusal}")
            logger.warning("execution %s: executor %s refused: %s", execution.pk, executor.instance_id, refusal,
                           extra=execution.log_extra())
        reason = "dispatch failed on every eligible executor: " + "; ".join(refusals)
        finish(execution, ExecutionStatus.FAILED, now=self.clock(), expected=[ExecutionStatus.RUNNING],
               logs=appended_logs(execution.logs, reason))
        return False

    def _post(self, executor: Executor, payload: dict) -> str | None:
        """None if accepted, else why not."""
        url = executor.base_url.rstrip("/") + "/execute"
        try:
            response = self.transport(executor, url, payload, timeout=tunable("DISPATCH_TIMEOUT_SECONDS"))
        except RefusedURL as exc:  # counts as this executor refusing: the next one is tried
            return f"not sent: {exc.reason}"
        except requests.RequestException as exc:
            return f"unreachable: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"answered HTTP {response.status_code}"
