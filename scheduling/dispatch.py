"""Dispatch: hand pending executions to executors, and sweep runs that outlived their timeout.

The leader's loop thread decides (which execution, which executors in which order: one ranking pass per
step, its state saved in one transaction) and claims a step's executions (pending -> running) before any
POST, so an executor's callback always finds its run running. Each run's first POST goes out on the
process's HTTP event loop without waiting (``executor_http.post_soon``); only a refusal hands the run to a
bounded pool of worker threads, which fail it over to the next executor or fail it. One slow executor never
delays the others.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.db.models import Count

from core.policy import deadline_for, may_dispatch
from executions.choices import ExecutionStatus
from executions.metrics import count_timeout
from executions.models import TaskExecution
from executions.services import (
    finish,
    logs_with,
    notify_executor_stop,
    record_sent,
    release_unsent,
    transition,
    transition_many,
)
from executors.client import (
    WAIT_MARGIN_SECONDS,
    Answer,
    Unreachable,
    post_json,
    post_soon,
    prepare_post,
    what_failed,
)
from executors.models import Executor
from executors.netguard import RefusedURL
from loadbalance.services import Ranking, Rankings, record_failover
from scheduler_project.config import tunable
from scheduling.metrics import observe_dispatch_latency
from tasks.choices import ExecutionMode
from workflows.runs import dispatch_extras

logger = logging.getLogger(__name__)
# Executions in flight (claimed, POST not answered yet), at most this many per dispatch worker: it bounds
# the requests a leader has outstanding, and what a leader killed mid-burst leaves to the timeout sweep
# (a run's timeout counts from its claim).
QUEUED_PER_WORKER = 64
# Pending executions due soon held in memory, loaded and ranked before their time (bounds the memory).
STAGE_LIMIT = 2000
# How often the database is searched for runs to stage. Runs the leader fires ahead itself are staged as
# they are written; the search finds the others (retries waiting out a backoff, another leader's fires).
STAGE_SCAN_SECONDS = 1.0
# Executions claimed per UPDATE when a step's claims are pipelined with the workers' POSTs: the first
# POSTs of a burst leave after one small UPDATE instead of after the whole step's.
CLAIM_CHUNK = 100


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
        **dispatch_extras(execution),  # a workflow node's run id and its parents' results
    }


@dataclass
class Staged:
    """A pending execution ready to go: its ranked executors and, once prepared, its first POST."""

    execution: TaskExecution
    ranking: Ranking
    request: Any = None
    claimed: bool = False  # claimed ahead of its time: running in the database, its POST not sent yet


def _dispatch_order(item: Staged) -> tuple:
    execution = item.execution
    return -execution.task.priority, execution.dispatch_after, execution.scheduled_time, execution.pk


class Dispatcher:
    """Owns the worker pool, the set of executions being dispatched right now, and the staged ones.

    ``transport(executor, url, payload, timeout=)`` is the signed, address-checked HTTP POST used to reach
    executors (``executor_http.post_json``). The first POST of each run is split in two:
    ``transport_prepare(executor, url, payload, checked=)`` checks and signs it (``executor_http.prepare_post``,
    done ahead of time for staged runs) and ``transport_soon(prepared, timeout=)`` starts a batch without
    waiting, a future each (``executor_http.post_soon``). Tests swap them without patching.

    Staging (``stage_ahead``): pending executions of non-sequential tasks due within ``stage_ahead`` (runs
    fired ahead, retries waiting out their backoff) are loaded and ranked before their time, so when it
    comes only the claim and the POST remain; ``next_due()`` tells the loop when to wake for them. They
    stay pending in the database until claimed: a leader that dies leaves them to the next one, and one
    cancelled meanwhile (task paused) loses its claim's compare-and-set.

    Claiming ahead (``claim_ahead``): staged runs due within ``claim_ahead`` are claimed before their time
    (their timeout counts from their due time), so a burst's claims are written before it is due and only
    the POSTs remain when it is. A leader that steps down hands the ones it has not sent back (pending
    again); one killed leaves them to the timeout sweep, like the runs it had in flight.
    """

    transport = staticmethod(post_json)
    transport_prepare = staticmethod(prepare_post)
    transport_soon = staticmethod(post_soon)

    def __init__(self, *, clock: Callable[[], datetime], workers: int, rng: random.Random | None = None,
                 stage_ahead: timedelta = timedelta(0), claim_ahead: timedelta = timedelta(0)) -> None:
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - load balancing, not security
        self.workers = workers
        self.stage_ahead = stage_ahead
        self.claim_ahead = min(claim_ahead, stage_ahead)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch")
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._staged: dict[str, Staged] = {}  # loop thread only
        self._next_scan: datetime | None = None  # when _stage next searches the database

    # --- loop-thread steps ------------------------------------------------------------------------

    def dispatch_pending(self, now: datetime) -> int:
        """Step: start dispatching every pending execution whose time has come, then stage the ones due
        within ``stage_ahead``. Returns how many were started."""
        started = self._start(self._take_staged(now), now)
        if not self._due_staged(now):  # else the workers' queue is full: the rest waits for the next step
            ready = self._ready(now)
            if ready:
                rankings = Rankings([execution.task for execution in ready], self.rng)
                ranked = [Staged(execution, rankings.rank(execution.task)) for execution in ready]
                # Saved before any worker starts: a failover recorded by a worker must land after this state.
                rankings.save(now)
                started += self._start(ranked, now)
        self._stage(now)
        self._claim_soon(now)
        return started

    def next_due(self) -> datetime | None:
        """When the loop must wake next for a staged execution: to claim it ahead, or to POST it."""
        return min((self._wake_at(item) for item in self._staged.values()), default=None)

    def _wake_at(self, item: Staged) -> datetime:
        if item.claimed or not item.ranking.executors:
            return item.execution.dispatch_after
        return item.execution.dispatch_after - self.claim_ahead

    def forget_staged(self) -> None:
        """On losing leadership: another leader now owns what was staged. The runs claimed ahead were never
        POSTed: they are handed back as pending, so the next leader dispatches them instead of its timeout
        sweep failing them (a leader that cannot reach the database leaves them to that sweep)."""
        unsent = [pk for pk, item in self._staged.items() if item.claimed]
        self._staged.clear()
        self._next_scan = None
        if unsent:
            try:
                release_unsent(unsent)
            except DatabaseError as exc:
                logger.warning("could not hand back %s runs claimed ahead: %s", len(unsent), exc)

    def _start(self, ranked: list[Staged], now: datetime) -> int:
        """Fail the unassignable, claim the rest a chunk at a time and send each chunk as soon as it is
        claimed, in the given (priority) order."""
        for item in ranked:
            if not item.ranking.executors:
                self._fail_unassignable(item.execution, item.ranking.assigned, now)
        claimed_ahead = [item for item in ranked if item.claimed]
        if claimed_ahead:
            sent_at = self.clock()
            self._launch(claimed_ahead)
            # After the POSTs are on their way, so it delays none of them.
            record_sent([item.execution.pk for item in claimed_ahead], sent_at)
        assignable = [item for item in ranked if item.ranking.executors and not item.claimed]
        for first in range(0, len(assignable), CLAIM_CHUNK):
            chunk = assignable[first:first + CLAIM_CHUNK]
            claimed = self._claim([(item.execution, item.ranking.executors) for item in chunk])
            self._launch([item for item in chunk if item.execution.pk in claimed])
        return len(ranked)

    def _room(self) -> int:
        """How many more executions may be in flight now (the workers' queue is bounded)."""
        return self.workers * QUEUED_PER_WORKER - self.in_flight()

    def _capacity(self) -> int:
        """How many more executions one step may claim from the database now."""
        return min(tunable("FIRE_BATCH_SIZE"), self._room())

    def _due_staged(self, now: datetime) -> list[str]:
        return [pk for pk, item in self._staged.items() if item.execution.dispatch_after <= now]

    def _take_staged(self, now: datetime) -> list[Staged]:
        """The staged executions due at ``now``, as many as may be in flight, in dispatch order."""
        due = sorted((self._staged[pk] for pk in self._due_staged(now)), key=_dispatch_order)
        taken = due[:max(0, self._room())]  # prepared: no batch cap
        for item in taken:
            del self._staged[item.execution.pk]
        return taken

    def _stage(self, now: datetime) -> None:
        """Search the database for pending executions due within ``stage_ahead`` that are not staged yet
        (retries, runs another leader fired), at most every STAGE_SCAN_SECONDS."""
        if self.stage_ahead <= timedelta(0) or (self._next_scan is not None and now < self._next_scan):
            return
        self._next_scan = now + timedelta(seconds=STAGE_SCAN_SECONDS)
        upcoming = (TaskExecution.objects
                    .filter(status=ExecutionStatus.PENDING, dispatch_after__gt=now,
                            dispatch_after__lte=now + self.stage_ahead)
                    .exclude(task__execution_mode=ExecutionMode.SEQUENTIAL)
                    .order_by("dispatch_after", "id").values_list("pk", flat=True)[:STAGE_LIMIT])
        new = [pk for pk in upcoming if pk not in self._staged][:self._stage_room()]
        if new:
            self._stage_rows(list(TaskExecution.objects.filter(pk__in=new).select_related("task")), now)

    def stage(self, written: list[TaskExecution], now: datetime) -> None:
        """Stage the runs this leader has just fired ahead (they carry their task): no reading them back."""
        if self.stage_ahead <= timedelta(0):
            return
        upcoming = [execution for execution in written
                    if execution.status == ExecutionStatus.PENDING and execution.pk not in self._staged
                    and now < execution.dispatch_after <= now + self.stage_ahead
                    and execution.task.execution_mode != ExecutionMode.SEQUENTIAL]
        self._stage_rows(upcoming[:self._stage_room()], now)

    def _claim_soon(self, now: datetime) -> None:
        """Claim the staged runs due within ``claim_ahead``, as many as the workers may have in flight."""
        if self.claim_ahead <= timedelta(0):
            return
        horizon = now + self.claim_ahead
        room = self._room() - sum(1 for item in self._staged.values() if item.claimed)
        soon = sorted((item for item in self._staged.values() if not item.claimed and item.ranking.executors
                       and item.execution.dispatch_after <= horizon), key=_dispatch_order)[:max(0, room)]
        if not soon:
            return
        claimed = self._claim([(item.execution, item.ranking.executors) for item in soon])
        for item in soon:
            if item.execution.pk in claimed:
                item.claimed = True
            else:  # cancelled or stopped since it was staged
                del self._staged[item.execution.pk]

    def _stage_room(self) -> int:
        return max(0, STAGE_LIMIT - len(self._staged))

    def _stage_rows(self, executions: list[TaskExecution], now: datetime) -> None:
        if not executions:
            return
        rankings = Rankings([execution.task for execution in executions], self.rng)
        checked: dict = {}  # each executor's address is checked once for the whole stage
        for execution in executions:
            ranking = rankings.rank(execution.task)
            self._staged[execution.pk] = Staged(execution, ranking, self._prepared(execution, ranking, checked))
        rankings.save(now)

    def _prepared(self, execution: TaskExecution, ranking: Ranking, checked: dict) -> Any:
        """The first POST, checked, encoded and signed now rather than when it is due (the signature stays
        fresh for minutes); None if there is no executor or the address guard refuses (decided again when
        due, on the usual path)."""
        if not ranking.executors:
            return None
        try:
            return self._prepare_first(execution, ranking.executors, checked)
        except RefusedURL:
            return None

    def _prepare_first(self, execution: TaskExecution, executors: list[Executor], checked: dict) -> Any:
        """The checked, signed POST of ``execution`` to its first executor; raises RefusedURL."""
        return self.transport_prepare(executors[0], execute_url(executors[0]), execute_payload(execution),
                                      checked=checked)

    def _claim(self, ranked: list[tuple[TaskExecution, list[Executor]]]) -> set[str]:
        """Claim the step's executions (pending -> running) before any POST, so an executor's callback always
        finds its run running: one UPDATE per (first executor, timeout, start) instead of a COMMIT per
        execution on the workers. The timeout counts from the claim, or from the due time of a run claimed
        ahead of it. Returns the ids claimed; a run stopped meanwhile is left alone."""
        now = self.clock()
        groups: dict[tuple[str, int, datetime], list[TaskExecution]] = defaultdict(list)
        for execution, executors in ranked:
            start = max(now, execution.dispatch_after or now)
            groups[(executors[0].pk, execution.task.timeout_seconds, start)].append(execution)
        claimed: set[str] = set()
        for (executor_id, timeout, start), executions in groups.items():
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
        batch = self._capacity()
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
        finish(execution, ExecutionStatus.FAILED, now=now, logs=logs_with(execution.logs, reason))

    def sweep_timeouts(self, now: datetime) -> int:
        """Step: running executions past deadline + grace become ``timeout``; their executors get a stop."""
        grace = timedelta(seconds=tunable("TIMEOUT_GRACE_SECONDS"))
        overdue = list(
            TaskExecution.objects.filter(status=ExecutionStatus.RUNNING, deadline__lt=now - grace)
            .select_related("task")[: tunable("FIRE_BATCH_SIZE")]
        )
        for execution in overdue:
            line = f"timed out: no result within {execution.task.timeout_seconds}s"
            if finish(execution, ExecutionStatus.TIMEOUT, now=now, logs=logs_with(execution.logs, line)):
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
        if wait:  # the first POSTs run on the HTTP loop, not the pool: let them answer (or time out)
            self.wait_idle(tunable("DISPATCH_TIMEOUT_SECONDS") + WAIT_MARGIN_SECONDS)
        self.pool.shutdown(wait=wait, cancel_futures=not wait)

    # --- delivery: the first POST on the HTTP loop, failover on the workers -----------------------------

    def _launch(self, claimed: list[Staged]) -> None:
        """Loop thread: POST claimed executions to their first executors without waiting (one batch). Only
        when that executor refuses does a worker thread take over (failover, or failing the run)."""
        with self._lock:
            self._in_flight.update(item.execution.pk for item in claimed)
        sending, requests = [], []
        checked: dict = {}
        for item in claimed:
            execution, executors = item.execution, item.ranking.executors
            request = item.request
            if request is None:
                try:
                    request = self._prepare_first(execution, executors, checked)
                except RefusedURL as exc:
                    self.pool.submit(self._deliver_safely, execution, executors, _refusal_of_guard(exc))
                    continue
            sending.append(item)
            requests.append(request)
        answers = self.transport_soon(requests, timeout=tunable("DISPATCH_TIMEOUT_SECONDS")) if requests else []
        for item, answer in zip(sending, answers, strict=True):
            answer.add_done_callback(functools.partial(self._first_answered, item.execution, item.ranking.executors))

    def _first_answered(self, execution: TaskExecution, executors: list[Executor], done: Future) -> None:
        """HTTP loop thread (keep it short, no database): accepted, or over to a worker for failover."""
        refusal = _refusal(done)
        if refusal is None:
            observe_dispatch_latency((self.clock() - execution.start_time).total_seconds())
            self._landed(execution.pk)
        else:
            self.pool.submit(self._deliver_safely, execution, executors, refusal)

    def _landed(self, execution_id: str) -> None:
        with self._lock:
            self._in_flight.discard(execution_id)

    def _deliver_safely(self, execution: TaskExecution, executors: list[Executor],
                        first_refusal: str | None = None) -> None:
        try:
            close_old_connections()
            self.deliver(execution, executors, first_refusal=first_refusal)
        except Exception:
            logger.exception("dispatch of execution %s crashed", execution.pk, extra=execution.log_extra())
        finally:
            self._landed(execution.pk)

    def deliver(self, execution: TaskExecution, executors: list[Executor], *,
                first_refusal: str | None = None) -> bool:
        """POST the claimed (running) execution to each executor in turn until one accepts (2xx), starting
        after the first when ``first_refusal`` says why it already refused.

        Returns True if an executor accepted. If none does, the run fails and the retry policy decides.
        """
        start = execution.start_time
        payload = execute_payload(execution)
        refusals: list[str] = []
        for position, executor in enumerate(executors):
            if position == 0 and first_refusal is not None:
                refusal = first_refusal
            else:
                if position and not transition(execution, ExecutionStatus.RUNNING,
                                               expected=[ExecutionStatus.RUNNING], executor_id=executor.pk):
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
               logs=logs_with(execution.logs, reason))
        return False

    def _post(self, executor: Executor, payload: dict) -> str | None:
        """None if accepted, else why not."""
        return _refusal_of(lambda: self.transport(executor, execute_url(executor), payload,
                                                  timeout=tunable("DISPATCH_TIMEOUT_SECONDS")))


def execute_url(executor: Executor) -> str:
    return executor.base_url.rstrip("/") + "/execute"


def _refusal_of_guard(exc: RefusedURL) -> str:
    return f"not sent: {exc.reason}"


def _refusal_of(answer: Callable[[], Answer]) -> str | None:
    """Why the POST whose ``answer()`` this is was not accepted, or None if it was. A refusal of the address
    guard counts as this executor refusing: the next one is tried."""
    try:
        answered = answer()
    except RefusedURL as exc:
        return _refusal_of_guard(exc)
    except Unreachable as exc:
        return f"unreachable: {exc}"
    return None if answered.ok else f"answered HTTP {answered.status_code}"


def _refusal(done: Future) -> str | None:
    """Why a POST sent without waiting was not accepted, or None if it was."""
    try:
        return _refusal_of(done.result)
    except CancelledError:
        return "unreachable: cancelled"
    except Exception as exc:  # never lose a run to an unexpected error on the HTTP loop
        return f"unreachable: {what_failed(exc)}"
