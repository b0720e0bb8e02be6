"""Delivery: the POSTs that hand claimed runs to executors, and the failover when one refuses.

Each run's first POST goes out on the process's HTTP event loop without waiting (``executor_http.post_soon``);
only a refusal hands the run to a bounded pool of worker threads, which fail it over to the next executor or
fail it. One slow executor never delays the others. An executor that declared ``execute_batch_limit`` gets
the first POSTs of the runs launched together as one ``POST /execute/batch`` (README "Batched dispatch"): one
signed request and one answer with a verdict per run, each run then going on exactly as if it had been sent
alone. Failover sends one run per request.

Every POST is one attempt of the run (core.leases): it carries the attempt number and ``accept_by``. A run
goes to the next executor only once the previous one cannot start it any more: it answered (a refusal), it
was never reached, or, its ``accept_by`` passed (it must refuse the request if it reads it later), it says
it does not hold the run. An executor that did not answer and cannot be asked keeps the run under its lease.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections

from core.leases import LeaseAnswer, accept_by_for, first_lease_until, may_fail_over
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import finish, logs_with, transition
from executors.client import (
    WAIT_MARGIN_SECONDS,
    Answer,
    Unreachable,
    encoded,
    post_json,
    post_soon,
    prepare_batch,
    prepare_post,
    what_failed,
)
from executors.models import Executor
from executors.netguard import RefusedURL
from loadbalance.services import Rankings, record_failover
from scheduler_project.config import tunable
from scheduler_sdk.batching import batches
from scheduling.metrics import observe_dispatch_latency
from scheduling.status_query import ask_executor
from workflows.runs import dispatch_extras

logger = logging.getLogger(__name__)

# Executions in flight (claimed, POST not answered yet), at most this many per dispatch worker: it bounds
# the requests a leader has outstanding, and what a leader killed mid-burst leaves to the lease sweep.
QUEUED_PER_WORKER = 64
# How far the executors' clocks may lag the scheduler's: an unanswered attempt is given this long past its
# accept_by before the run goes elsewhere (README "Leases": keep hosts' clocks in sync, e.g. NTP).
CLOCK_SKEW_SECONDS = 1.0
# What one POST /execute/batch carries at most, whatever the executor declared: the SDK reads at most 1 MB per
# request, and a run's parameters may be up to 64 KB.
BATCH_MAX_ITEMS = 500
BATCH_MAX_BYTES = 512 * 1024


def callback_url(execution_id: str) -> str:
    return f"{tunable('CALLBACK_BASE_URL').rstrip('/')}/api/v1/executions/{execution_id}/callback"


def execute_url(executor: Executor) -> str:
    return executor.endpoint("/execute")


def execute_batch_url(executor: Executor) -> str:
    return executor.endpoint("/execute/batch")


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def execute_payload(execution: TaskExecution, *, attempt: int, accept_by: datetime) -> dict:
    """The /execute body of one attempt (README "Writing an executor")."""
    task = execution.task
    shard = {"shard_index": execution.shard_index, "shard_total": execution.shard_total} if execution.shard else {}
    return {
        **shard,
        "execution_id": execution.pk,
        "attempt": attempt,
        "accept_by": iso(accept_by),
        "lease_seconds": tunable("LEASE_SECONDS"),
        "renew_seconds": tunable("LEASE_RENEW_SECONDS"),
        "task_id": task.pk,
        "task_name": task.name,
        "parameters": execution.parameters or {},
        "timeout_seconds": task.timeout_seconds,
        "retry_count": execution.retry_count,
        "scheduled_time": iso(execution.scheduled_time),
        "callback_url": callback_url(execution.pk),
        **dispatch_extras(execution),  # a workflow node's run id and its parents' results
    }


@dataclass(frozen=True)
class BatchItem:
    """The first POST of a run to an executor that takes batches: its /execute body, encoded. It is signed
    with the others of its batch when they leave."""

    body: bytes


@dataclass(frozen=True)
class Refusal:
    """Why an attempt was not accepted. ``answered``: the executor surely holds nothing (it answered, or was
    never reached); otherwise it may read the request until the attempt's accept_by."""

    reason: str
    answered: bool


class Delivery:
    """The worker pool and the executions whose POST has not been answered yet.

    ``transport(executor, url, payload, timeout=)`` is the signed, address-checked HTTP POST used to reach
    executors (``executor_http.post_json``). The first POST of each run is split in two:
    ``transport_prepare(executor, url, payload, checked=)`` checks and signs it (``executor_http.prepare_post``,
    done ahead of time for staged runs) and ``transport_soon(prepared, timeout=)`` starts them without
    waiting, a future each (``executor_http.post_soon``). ``transport_prepare_batch(executor, url, bodies,
    checked=)`` checks and signs one POST /execute/batch of encoded /execute bodies (``prepare_batch``).
    ``sleep`` waits out an accept_by. Tests swap them.
    """

    transport = staticmethod(post_json)
    transport_prepare = staticmethod(prepare_post)
    transport_prepare_batch = staticmethod(prepare_batch)
    transport_soon = staticmethod(post_soon)
    sleep = staticmethod(time.sleep)

    def __init__(self, *, clock: Callable[[], datetime], workers: int) -> None:
        self.clock = clock
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch")
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def room(self) -> int:
        """How many more executions may be in flight now (the workers' queue is bounded)."""
        return self.workers * QUEUED_PER_WORKER - self.in_flight()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def busy(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

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

    def prepare_first(self, execution: TaskExecution, executor: Executor, *, attempt: int, accept_by: datetime,
                      checked: dict) -> Any:
        """The checked, signed POST of this attempt to ``executor`` (raises RefusedURL), or its part of a batch
        if the executor takes batches (checked and signed with its batch)."""
        payload = execute_payload(execution, attempt=attempt, accept_by=accept_by)
        if executor.takes_batches:
            return BatchItem(encoded(payload))
        return self.transport_prepare(executor, execute_url(executor), payload, checked=checked)

    # --- the first POST, on the HTTP loop ---------------------------------------------------------------

    def launch(self, claimed: list[tuple[TaskExecution, list[Executor], Any]]) -> None:
        """Loop thread: POST claimed executions (each with its executors and its prepared first POST, or
        None) to their first executors without waiting, the runs for an executor that takes batches in as
        few batches as its limit allows. Only when that executor refuses does a worker thread take over
        (failover, or failing the run)."""
        with self._lock:
            self._in_flight.update(execution.pk for execution, _, _ in claimed)
        on_answers, requests = [], []
        by_executor: dict[str, list[tuple[TaskExecution, list[Executor], BatchItem]]] = defaultdict(list)
        checked: dict = {}
        for execution, executors, request in claimed:
            if request is None:
                try:
                    request = self.prepare_first(execution, executors[0], attempt=execution.attempt,
                                                 accept_by=execution.accept_by, checked=checked)
                except RefusedURL as exc:
                    self.pool.submit(self._deliver_safely, execution, executors, _refusal_of_guard(exc))
                    continue
            if isinstance(request, BatchItem):
                by_executor[executors[0].pk].append((execution, executors, request))
                continue
            on_answers.append(functools.partial(self._first_answered, execution, executors))
            requests.append(request)
        for group in by_executor.values():
            executor = group[0][1][0]
            for batch in _batches(group, executor.execute_batch_limit):
                try:
                    requests.append(self.transport_prepare_batch(executor, execute_batch_url(executor),
                                                                 [item.body for _, _, item in batch], checked=checked))
                except RefusedURL as exc:
                    for execution, executors, _ in batch:
                        self.pool.submit(self._deliver_safely, execution, executors, _refusal_of_guard(exc))
                    continue
                on_answers.append(functools.partial(self._batch_answered,
                                                    [(execution, executors) for execution, executors, _ in batch]))
        answers = self.transport_soon(requests, timeout=tunable("DISPATCH_TIMEOUT_SECONDS")) if requests else []
        for on_answer, answer in zip(on_answers, answers, strict=True):
            answer.add_done_callback(on_answer)

    @staticmethod
    def _candidates(execution: TaskExecution, executors: list[Executor]) -> Iterator[Executor]:
        """The executors the run was ranked to, then, once each of them has refused, those eligible now that
        were not among them. A staged run was ranked up to stage_ahead before its time: an executor that came
        back meanwhile (a rolling restart) takes the run rather than the run failing. Never for a broadcast
        shard, which belongs to its own executor."""
        yield from executors
        if execution.shard:
            return
        tried = {executor.pk for executor in executors}
        yield from (executor for executor in Rankings([execution.task], random.Random()).rank(execution.task).executors
                    if executor.pk not in tried)

    def _first_answered(self, execution: TaskExecution, executors: list[Executor], done: Future) -> None:
        self._settle_first(execution, executors, _refusal(done))

    def _batch_answered(self, runs: list[tuple[TaskExecution, list[Executor]]], done: Future) -> None:
        refusals = _batch_refusals(done, [execution.pk for execution, _ in runs])
        for (execution, executors), refusal in zip(runs, refusals, strict=True):
            self._settle_first(execution, executors, refusal)

    def _settle_first(self, execution: TaskExecution, executors: list[Executor], refusal: Refusal | None) -> None:
        """HTTP loop thread (keep it short, no database): accepted, or over to a worker for failover."""
        if refusal is None:
            observe_dispatch_latency((self.clock() - execution.start_time).total_seconds())
            self._landed(execution.pk)
        else:
            self.pool.submit(self._deliver_safely, execution, executors, refusal)

    def _landed(self, execution_id: str) -> None:
        with self._lock:
            self._in_flight.discard(execution_id)

    # --- failover, on the workers -----------------------------------------------------------------------

    def _deliver_safely(self, execution: TaskExecution, executors: list[Executor],
                        first_refusal: Refusal | None = None) -> None:
        try:
            close_old_connections()
            self.deliver(execution, executors, first_refusal=first_refusal)
        except Exception:
            logger.exception("dispatch of execution %s crashed", execution.pk, extra=execution.log_extra())
        finally:
            self._landed(execution.pk)

    def deliver(self, execution: TaskExecution, executors: list[Executor], *,
                first_refusal: Refusal | None = None) -> bool:
        """POST the claimed (running) execution to each executor in turn until one accepts (2xx), starting
        after the first when ``first_refusal`` says why it already refused. Each executor after the first
        gets a new attempt, and only once the previous attempt can no longer start.

        Returns True if an executor accepted. If none does, the run fails and the retry policy decides.
        """
        start = execution.start_time
        refusals: list[str] = []
        for position, executor in enumerate(self._candidates(execution, executors)):
            if position == 0 and first_refusal is not None:
                refusal = first_refusal
            else:
                if position and not self._next_attempt(execution, executor):
                    return False  # finished meanwhile (stop, timeout, lease)
                refusal = self._post(executor, execute_payload(execution, attempt=execution.attempt,
                                                                accept_by=execution.accept_by))
            if refusal is None:
                observe_dispatch_latency((self.clock() - start).total_seconds())
                if position:
                    record_failover(execution.task, executor.pk)
                return True
            logger.warning("execution %s: executor %s refused: %s", execution.pk, executor.instance_id,
                           refusal.reason, extra=execution.log_extra())
            if not refusal.answered and self._may_hold(execution, executor):
                return True  # it accepted after all, or cannot say: its lease decides
            refusals.append(f"{executor.name} ({executor.instance_id}): {refusal.reason}")
        reason = "dispatch failed on every eligible executor: " + "; ".join(refusals)
        finish(execution, ExecutionStatus.FAILED, now=self.clock(), expected=[ExecutionStatus.RUNNING],
               matching={"attempt": execution.attempt}, logs=logs_with(execution.logs, reason))
        return False

    def _may_hold(self, execution: TaskExecution, executor: Executor) -> bool:
        """An executor that did not answer may have accepted the attempt (its answer lost, or it froze right
        after accepting) or may still read it until accept_by. Once accept_by (and the clocks' skew) has
        passed it is asked: only one that says it does not hold the run lets it go elsewhere. One that holds
        it, finished it or cannot be reached keeps it, under its lease (the lease sweep asks again)."""
        skewed = execution.accept_by + timedelta(seconds=CLOCK_SKEW_SECONDS)
        if not may_fail_over(now=self.clock(), accept_by=skewed, answered=False):
            self.sleep((skewed - self.clock()).total_seconds())
        state = ask_executor(executor, [execution], transport=self.transport)[execution.pk]
        if state.answer == LeaseAnswer.UNKNOWN:
            return False
        logger.warning("execution %s: executor %s did not answer the dispatch; asked, it says %s: the run stays "
                       "there under its lease", execution.pk, executor.instance_id, state.answer,
                       extra=execution.log_extra())
        return True

    def _next_attempt(self, execution: TaskExecution, executor: Executor) -> bool:
        """Record the run's next attempt, on ``executor``, if it is still the attempt this worker handles."""
        now = self.clock()
        accept_by = accept_by_for(now, tunable("DISPATCH_TIMEOUT_SECONDS"))
        return transition(execution, ExecutionStatus.RUNNING, expected=[ExecutionStatus.RUNNING],
                          matching={"attempt": execution.attempt}, executor_id=executor.pk,
                          attempt=execution.attempt + 1, accept_by=accept_by,
                          lease_until=first_lease_until(accept_by, tunable("LEASE_SECONDS")))

    def _post(self, executor: Executor, payload: dict) -> Refusal | None:
        """None if accepted, else why not."""
        return _refusal_of(lambda: self.transport(executor, execute_url(executor), payload,
                                                  timeout=tunable("DISPATCH_TIMEOUT_SECONDS")))


def _batches(group: list[tuple[Any, Any, BatchItem]], limit: int) -> Iterator[list]:
    """``group`` cut into batches of at most ``limit`` runs (and BATCH_MAX_ITEMS, BATCH_MAX_BYTES), in order."""
    return batches(group, max_items=max(1, min(limit, BATCH_MAX_ITEMS)), max_bytes=BATCH_MAX_BYTES,
                   size_of=lambda entry: len(entry[2].body) + 1)


def _batch_refusals(done: Future, execution_ids: list[str]) -> list[Refusal | None]:
    """Each run's verdict from one POST /execute/batch: the whole batch's refusal (not answered, or not 2xx),
    else the status the executor gave the run, as if it had answered its own /execute. A run the answer does
    not name may have been accepted: it is treated as unanswered (``Delivery._may_hold`` asks)."""
    refusal = _refusal(done)
    if refusal is not None:
        return [refusal] * len(execution_ids)
    statuses = _batch_statuses(done.result().body)
    return [_item_refusal(statuses.get(execution_id)) for execution_id in execution_ids]


def _batch_statuses(body: bytes) -> dict[str, int]:
    """execution id -> the HTTP status an executor's batch answer (``{"results": [{"execution_id", "status"},
    ...]}``) gives it; what is unreadable is left out."""
    try:
        results = jsonlib.loads(body).get("results")
    except (ValueError, AttributeError, RecursionError):
        return {}
    if not isinstance(results, list):
        return {}
    return {entry["execution_id"]: entry["status"] for entry in results
            if isinstance(entry, dict) and isinstance(entry.get("execution_id"), str)
            and type(entry.get("status")) is int}


def _item_refusal(status: int | None) -> Refusal | None:
    if status is None:
        return Refusal("its batch's answer did not say whether it was accepted", answered=False)
    return None if 200 <= status < 300 else Refusal(f"answered HTTP {status} (in a batch)", answered=True)


def _refusal_of_guard(exc: RefusedURL) -> Refusal:
    return Refusal(f"not sent: {exc.reason}", answered=True)


def _refusal_of(answer: Callable[[], Answer]) -> Refusal | None:
    """Why the POST whose ``answer()`` this is was not accepted, or None if it was. A refusal of the address
    guard counts as this executor refusing: the next one is tried."""
    try:
        answered = answer()
    except RefusedURL as exc:
        return _refusal_of_guard(exc)
    except Unreachable as exc:
        return Refusal(f"unreachable: {exc}", answered=not exc.maybe_received)
    return None if answered.ok else Refusal(f"answered HTTP {answered.status_code}", answered=True)


def _refusal(done: Future) -> Refusal | None:
    """Why a POST sent without waiting was not accepted, or None if it was."""
    try:
        return _refusal_of(done.result)
    except CancelledError:
        return Refusal("unreachable: cancelled", answered=False)
    except Exception as exc:  # never lose a run to an unexpected error on the HTTP loop
        return Refusal(f"unreachable: {what_failed(exc)}", answered=False)
