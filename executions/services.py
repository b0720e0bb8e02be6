"""Execution state changes. Status moves only through ``transition``: a compare-and-set UPDATE, so the
callback, the timeout sweeper, stop and the dispatcher can race without producing an impossible state.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Cast

from alerts.outbox import record_run_end
from core import logtext
from core.clock import utc_now
from core.leases import LateResult, late_result, renewed_lease_until
from core.policy import attempts_status, broadcast_outcome
from core.states import ACTIVE_STATUSES, ExecutionStatus, may_correct, may_move
from executions.metrics import count_finished, count_late_result, count_lost
from executions.models import TaskExecution
from executions.retries import schedule_retry
from executors.client import request_stop
from scheduler_project.config import tunable
from scheduler_project.errors import DomainError, ErrorCode
from workflows.runs import advance_after_node

logger = logging.getLogger(__name__)

R = TypeVar("R")
DEADLOCK_ATTEMPTS = 3

def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def transition(
    execution: TaskExecution, to: str, *, expected: Iterable[str] | None = None, matching: dict | None = None,
    late: bool = False, **changes: Any,
) -> bool:
    """Move ``execution`` to ``to`` if it is still in the status it was read with (or one of ``expected``),
    and still has the values ``matching`` names (e.g. its attempt: a run re-dispatched meanwhile is left alone).

    Returns True when this call made the change; False when something else changed the row first, in
    which case nothing was written. On success the instance reflects the new row.
    """
    sources = set(expected) if expected is not None else {execution.status}
    if late:  # a late result over a status the scheduler presumed (core.states.may_correct)
        sources = {status for status in sources if may_correct(status, to)}
        matching = {**(matching or {}), "ended_by_scheduler": True}
    else:
        sources = {status for status in sources if may_move(status, to)}
    if not sources:
        return False
    updated = (TaskExecution.objects.filter(pk=execution.pk, status__in=sources, **(matching or {}))
               .update(status=to, **changes))
    if updated != 1:
        return False
    execution.status = to
    for field, value in changes.items():
        setattr(execution, field, value)
    return True


def transition_many(execution_ids: list[str], to: str, *, expected: str, matching: dict | None = None,
                    **changes: Any) -> set[str]:
    """``transition`` for many executions in one UPDATE (the dispatcher claims a whole step this way).

    Returns the ids this call moved. The others changed first (a stop, a cancel) and were left alone: the
    rows that now carry exactly ``changes`` are ours.
    """
    if not may_move(expected, to):
        return set()
    ids = list(execution_ids)
    moved = TaskExecution.objects.filter(pk__in=ids, status=expected, **(matching or {})).update(status=to, **changes)
    if moved == len(ids):
        return set(ids)
    return set(TaskExecution.objects.filter(pk__in=ids, status=to, **changes).values_list("pk", flat=True))


def withdraw(execution_ids: list[str], *, now: datetime, logs: str) -> set[str]:
    """Cancel pending runs that were never sent (their task paused, deleted or rescheduled). A broadcast shard
    among them may be the last one its run waited for: that run settles in the same transaction (it has no
    deadline or lease a sweep would find). Returns the ids this call cancelled."""
    with transaction.atomic():
        moved = transition_many(execution_ids, ExecutionStatus.CANCELLED, expected=ExecutionStatus.PENDING,
                                end_time=now, logs=logs)
        settled: set[tuple] = set()
        for shard in TaskExecution.objects.filter(pk__in=list(moved), shard__gt=0):
            if (key := tuple(shard.fire_key().items())) not in settled:
                settled.add(key)
                _settle_broadcast(shard, now=now)
    return moved


def release_unsent(execution_ids: list[str]) -> int:
    """Hand runs a leader claimed ahead of their time, and never POSTed, back to pending. Only those still
    running as claimed move: one stopped or timed out meanwhile keeps its final status."""
    return len(transition_many(execution_ids, ExecutionStatus.PENDING, expected=ExecutionStatus.RUNNING,
                               executor=None, start_time=None, deadline=None, accept_by=None, lease_until=None))


def record_sent(execution_ids: list[str], sent_at: datetime) -> int:
    """Runs claimed ahead of their time carry their due time as ``start_time``; the dispatcher calls this for
    those whose POSTs left well after it, with the moment they left. Only runs still running as claimed are
    touched (a callback may have come first)."""
    return TaskExecution.objects.filter(pk__in=execution_ids, status=ExecutionStatus.RUNNING).update(
        start_time=sent_at)


def get_execution(execution_id: str, *, for_update: bool = False) -> TaskExecution:
    queryset = TaskExecution.objects.select_related("task", "executor")
    if for_update:
        queryset = TaskExecution.objects.select_for_update()
    try:
        return queryset.get(pk=execution_id)
    except TaskExecution.DoesNotExist:
        raise DomainError(ErrorCode.EXECUTION_NOT_FOUND, f"execution '{execution_id}' does not exist") from None


def _forbid(execution: TaskExecution, action: str, allowed: Iterable[str]) -> DomainError:
    return DomainError(
        ErrorCode.EXECUTION_STATE_FORBIDS,
        f"cannot {action} an execution whose status is '{execution.status}'",
        {"execution_id": execution.pk, "status": execution.status, "allowed": sorted(allowed)},
    )


def finish(execution: TaskExecution, to: str, *, now: datetime, end_time: datetime | None = None,
           expected: Iterable[str] | None = None, lost: bool = False, **changes: Any) -> bool:
    """Move to a terminal status, recording end time and duration, then let the retry policy react.
    ``lost``: the scheduler ended it because its executor no longer holds it (``lose_run``), which its alert says.

    One transaction: a node that dies between the status change and the retry insert must not leave a
    failed run whose retry never exists (the chaos suite caught exactly that after a SIGKILL).
    """
    with transaction.atomic():
        done = transition(execution, to, expected=expected, **_ending(execution, now=now, end_time=end_time),
                          **changes)
        if done:
            _after_ending(execution, now=now, lost=lost)
    return done


def _after_ending(execution: TaskExecution, *, now: datetime, lost: bool = False) -> None:
    """What follows a run's end, in its transaction: the retry policy (one query for a failed run, none for
    a success), a workflow run's advance (none for a run outside workflows), its alert event (``alerts.outbox``:
    committed with the end or not at all), and the finished counter once committed. Single and batched results
    both end through here."""
    retry = schedule_retry(execution, now=now)
    advance_after_node(execution, now=now)  # a workflow's next nodes start in this same transaction
    if execution.shard:  # a shard's end settles its broadcast run, whose own end is the one alerted
        _settle_broadcast(execution, now=now)
    else:
        record_run_end(execution, will_retry=retry is not None, now=now, lost=lost)
    status = execution.status
    transaction.on_commit(lambda: count_finished(status))


def _ending(execution: TaskExecution, *, now: datetime, end_time: datetime | None) -> dict[str, Any]:
    """``end_time`` (default ``now``, never before the start) and the duration, as a run's end records them."""
    end = end_time or now
    if execution.start_time is not None and end < execution.start_time:
        end = execution.start_time
    return {"end_time": end, "duration_ms": duration_ms(execution.start_time, end)}


def is_deadlock(exc: OperationalError) -> bool:
    """MySQL/MariaDB error 1213, or PostgreSQL's deadlock / serialization failure."""
    if exc.args and exc.args[0] == 1213:
        return True
    return getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")


def retried_on_deadlock(func: Callable[..., R]) -> Callable[..., R]:
    """Runs a whole transaction again when the database picked it as a deadlock victim.

    A callback racing the timeout sweep or a retry insert on the same rows can be chosen as the victim;
    the database rolled everything back, so running it again is safe, and the executor gets its answer
    instead of a 503. Inside an outer transaction there is nothing safe to re-run: the error propagates.
    """
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> R:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == DEADLOCK_ATTEMPTS or connection.in_atomic_block or not is_deadlock(exc):
                    raise
                logger.warning("%s: deadlock (attempt %s/%s), running the transaction again",
                               func.__name__, attempt, DEADLOCK_ATTEMPTS)
        raise AssertionError("unreachable")

    return run


@dataclass(frozen=True)
class CallbackOutcome:
    execution: TaskExecution
    previous_status: str


@retried_on_deadlock
def apply_callback(*, execution_id: str, status: str, result: dict | None, logs: str | None,
                   end_time: datetime | None, now: datetime) -> CallbackOutcome:
    """Apply an executor's report once. A report for a run already final changes nothing (30002), except
    the note a late result leaves on it (``_took_late``), which is committed before the refusal is raised."""
    with transaction.atomic():
        execution = get_execution(execution_id, for_update=True)
        previous = execution.status
        if previous in ACTIVE_STATUSES:
            if not finish(execution, status, now=now, end_time=end_time,
                          **_callback_changes(execution, result, logs)):
                execution.refresh_from_db()
                raise _forbid(execution, "report a result for", ACTIVE_STATUSES)
            return CallbackOutcome(execution=execution, previous_status=previous)
        if _took_late(execution, ResultReport(execution_id, status, result, logs, end_time), now):
            return CallbackOutcome(execution=execution, previous_status=previous)
    raise _forbid(execution, "report a result for", ACTIVE_STATUSES)


@retried_on_deadlock
@transaction.atomic
def stop_execution(*, execution_id: str, now: datetime) -> CallbackOutcome:
    """Operator stop: running -> cancelled (spec 000 §7.5); after commit the executor is told to stop (the API and
    the console both call this)."""
    execution = get_execution(execution_id, for_update=True)
    previous = execution.status
    stopping = (cancel_run(execution, now=now, reason="stopped by operator")
                if previous == ExecutionStatus.RUNNING else None)
    if stopping is None:
        raise _forbid(execution, "stop", {ExecutionStatus.RUNNING})
    transaction.on_commit(lambda: [notify_executor_stop(pk) for pk in stopping])
    return CallbackOutcome(execution=execution, previous_status=previous)


def cancel_run(execution: TaskExecution, *, now: datetime, reason: str,
               expected: Iterable[str] | None = None) -> list[str] | None:
    """The stop path: cancel a pending or running run (from the status it was read with, or one of
    ``expected``) and, for a broadcast run, its shards. Returns the runs whose executors must be told to stop
    (the run, or its running shards), which the caller does once this transaction has committed
    (``notify_executor_stop``: an operator's stop on commit, a replace fire on a dispatch worker); None if
    the run had moved meanwhile (nothing written). In the caller's transaction."""
    # A running run was sent to an executor, but for a broadcast run: its shards were, never the run itself.
    was_sent = execution.status == ExecutionStatus.RUNNING and not execution.is_broadcast_parent
    if not finish(execution, ExecutionStatus.CANCELLED, now=now, expected=expected,
                  logs=logs_with(execution.logs, reason)):
        return None
    shards = cancel_shards(execution, now=now, reason=f"broadcast run {reason}")
    return [execution.pk, *shards] if was_sent else shards


def cancel_shards(parent: TaskExecution, *, now: datetime, reason: str) -> list[str]:
    """A broadcast run that ends early (stopped, or its workflow run cancelled) takes its pending and running
    shards with it; returns the ids of the running ones cancelled (their executors are to be told)."""
    if not parent.is_broadcast_parent:
        return []
    running = []
    for shard in shards_of(parent).filter(status__in=ACTIVE_STATUSES):
        was_running = shard.status == ExecutionStatus.RUNNING
        if finish(shard, ExecutionStatus.CANCELLED, now=now, logs=logs_with(shard.logs, reason)) and was_running:
            running.append(shard.pk)
    return running


def notify_executor_stop(execution_id: str) -> bool:
    """Tell the run's executor to stop it (after the run became final here). True if acknowledged."""
    execution = TaskExecution.objects.select_related("executor").filter(pk=execution_id).first()
    if execution is None or execution.executor is None:
        return False
    return request_stop(execution.executor, execution_id, log_extra=execution.log_extra())


# --- broadcast: one logical run, one shard per executor -----------------------------------------------------

def create_shards(parent: TaskExecution, executor_ids: list[str], *, now: datetime,
                  atomic: Callable[[], AbstractContextManager] = transaction.atomic) -> list[TaskExecution]:
    """Fan a broadcast run out: the parent becomes running (it is never dispatched itself: no executor,
    attempt, deadline or lease, so the sweeps never take it) and gets one pending shard per executor, pinned
    to it, shard k of n carrying ``shard`` k+1. Returns the shards, or [] when the parent is no longer pending
    (cancelled meanwhile). One transaction of ``atomic`` (the leader's fenced one). A workflow node's shards
    carry its node_key (their fire key) but not its run: the node's outcome is the broadcast run's."""
    total = len(executor_ids)
    with atomic():
        if not transition(parent, ExecutionStatus.RUNNING, expected=[ExecutionStatus.PENDING], start_time=now,
                          shard_total=total):
            return []
        shards = [
            TaskExecution(task_id=parent.task_id, scheduled_time=parent.scheduled_time,
                          trigger_type=parent.trigger_type, parameters=parent.parameters,
                          status=ExecutionStatus.PENDING, dispatch_after=now, shard=index + 1,
                          shard_total=total, executor_id=executor_id, node_key=parent.node_key)
            for index, executor_id in enumerate(executor_ids)
        ]
        TaskExecution.objects.bulk_create(shards)
    for shard in shards:
        shard.task = parent.task
    return shards


def shards_of(parent: TaskExecution):
    """Every shard of a broadcast run, retries included (they share its fire key)."""
    return TaskExecution.objects.filter(**parent.fire_key(), shard__gt=0)


def _settle_broadcast(shard: TaskExecution, *, now: datetime) -> None:
    """In the transaction of a shard's end (or of a late result applied to it): once no shard is pending or
    running, the parent ends with ``core.policy.broadcast_outcome`` of each shard's ``attempts_status``. The
    parent row is locked first, so two shards ending at once are serialized and the second sees the first's
    end (read committed): the parent cannot be left running. A shard lost or timed out ends here like any
    other (its retry, if any, keeps the parent running)."""
    parent = (TaskExecution.objects.select_for_update()
              .filter(**shard.fire_key(), retry_count=0, shard=0).first())
    if parent is None or parent.status not in ACTIVE_STATUSES:
        return
    attempts: dict[int, dict[int, str]] = defaultdict(dict)
    for shard_number, retry_count, status in shards_of(parent).values_list("shard", "retry_count", "status"):
        attempts[shard_number][retry_count] = status
    latest = {number: attempts_status(tries) for number, tries in attempts.items()}
    outcome = broadcast_outcome(latest)
    if outcome is None:
        return
    failed = sorted(number - 1 for number, status in latest.items() if status != ExecutionStatus.SUCCESS)
    summary = f"broadcast: {len(latest) - len(failed)}/{len(latest)} shards succeeded"
    if failed:
        summary += f"; not succeeded: shard_index {', '.join(map(str, failed))}"
    finish(parent, outcome, now=now, logs=logs_with(parent.logs, summary))


# --- replace mode: a fire that cancels the runs in progress ------------------------------------------------

@dataclass
class Replacement:
    """A replace-mode fire: its new run is held back (``held_until``) while the runs it replaced are stopped
    on their executors, then released to its own dispatch time. If the node dies in between, the hold
    simply expires: by then any stop request it sent has timed out."""

    task_id: str
    run_id: str  # the new run
    dispatch_after: datetime  # when the new run would have been dispatched without the hold
    scheduled_time: datetime
    stopping: list[str] = dataclasses.field(default_factory=list)  # running runs cancelled, to stop on their executors

    def held_until(self, now: datetime) -> datetime:
        hold = timedelta(seconds=tunable("DISPATCH_TIMEOUT_SECONDS") + STOP_HOLD_MARGIN_SECONDS)
        return max(self.dispatch_after, now + hold)


STOP_HOLD_MARGIN_SECONDS = 1.0


def cancel_replaced(replacement: Replacement, *, now: datetime) -> None:
    """In the fire's (fenced) transaction: cancel every other pending or running run of the task through the
    stop path (``cancel_run``: a broadcast run with its shards), but for its runs as a workflow node (and
    their shards), which belong to their workflow run: the new run waits for those, as one-at-a-time modes
    do. The runs to stop on their executors are remembered in ``stopping`` for ``stop_replaced``, after
    commit."""
    reason = f"replaced by the fire at {replacement.scheduled_time.isoformat()} (replace mode)"
    active = (TaskExecution.objects.filter(task_id=replacement.task_id, status__in=ACTIVE_STATUSES, node_key="",
                                           shard=0)  # shards go with their broadcast run
              .exclude(pk=replacement.run_id))
    for execution in active:
        replacement.stopping += cancel_run(execution, now=now, reason=reason) or []


def stop_replaced(replacement: Replacement, *, clock: Callable[[], datetime] = utc_now,
                  stop: Callable[[str], bool] | None = None) -> None:
    """After the fire committed: tell each replaced run's executor to stop it (``stop``, by default
    ``notify_executor_stop``: each request answered or timed out; an executor that never hears it learns
    at its next lease renewal that the run was revoked), then let the new run go at its own time. Runs on
    a worker thread."""
    for execution_id in replacement.stopping:
        (stop or notify_executor_stop)(execution_id)
    release = max(replacement.dispatch_after, clock())
    TaskExecution.objects.filter(pk=replacement.run_id, status=ExecutionStatus.PENDING,
                                 dispatch_after__gt=release).update(dispatch_after=release)


def logs_with(existing: str, addition: str) -> str:
    """``existing`` with ``addition`` on a new line, capped at ``EXECUTION_LOG_MAX_CHARS`` (the tail kept)."""
    return logtext.appended_logs(existing, addition, settings.EXECUTION_LOG_MAX_CHARS)


# --- results reported in batches (POST /api/v1/executions/callbacks) ---------------------------------------

class ReportOutcome(StrEnum):
    """What became of one result in a batch."""

    APPLIED = "applied"
    ALREADY_FINAL = "already_final"  # the run had ended (timeout sweep, stop, an earlier report): 30002 alone
    NOT_FOUND = "not_found"  # no such execution: 30001 alone
    NOT_YOURS = "not_yours"  # not dispatched to the executor that signed the batch: 401 alone


@dataclass(frozen=True)
class ResultReport:
    """One executor's result, as the single callback takes it."""

    execution_id: str
    status: str
    result: dict | None = None
    logs: str | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class ReportVerdict:
    execution_id: str
    outcome: ReportOutcome
    status: str | None  # the execution's status afterwards; None when not found or not the signer's


@retried_on_deadlock
@transaction.atomic
def apply_callbacks(*, executor_id: str, reports: Sequence[ResultReport], now: datetime) -> list[ReportVerdict]:
    """``apply_callback`` for many results of one executor, in one transaction; one verdict per report, in order.

    Rows are locked in one query, ordered by id so that two batches touching the same rows cannot deadlock.
    Each result is applied at most once and by the rules of the single callback: only to an execution
    dispatched to ``executor_id`` and not yet final; then ``finish()`` semantics (end clamped to the start,
    duration, logs appended, a retry for a failed run with attempts left). The status changes are written
    by compare-and-set UPDATEs, one per status read (not one per row).
    """
    ids = [report.execution_id for report in reports]
    if len(set(ids)) != len(ids):
        raise ValueError("each execution may appear only once in a batch")
    rows = {row.pk: row for row in TaskExecution.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    verdicts: dict[str, ReportVerdict] = {}
    to_apply: list[tuple[TaskExecution, ResultReport]] = []
    for report in reports:
        row = rows.get(report.execution_id)
        refusal = _refusal(row, report, executor_id)
        if refusal is not None and refusal.outcome == ReportOutcome.ALREADY_FINAL and _took_late(row, report, now):
            refusal = ReportVerdict(row.pk, ReportOutcome.APPLIED, row.status)
        if refusal is not None:
            verdicts[report.execution_id] = refusal
        else:
            to_apply.append((row, report))
    for row, applied in _finish_all(to_apply, now=now):
        outcome = ReportOutcome.APPLIED if applied else ReportOutcome.ALREADY_FINAL
        verdicts[row.pk] = ReportVerdict(row.pk, outcome, row.status)
    return [verdicts[execution_id] for execution_id in ids]


def _refusal(row: TaskExecution | None, report: ResultReport, executor_id: str) -> ReportVerdict | None:
    if row is None:
        return ReportVerdict(report.execution_id, ReportOutcome.NOT_FOUND, None)
    if row.executor_id != executor_id:
        return ReportVerdict(report.execution_id, ReportOutcome.NOT_YOURS, None)
    if not may_move(row.status, report.status):
        return ReportVerdict(report.execution_id, ReportOutcome.ALREADY_FINAL, row.status)
    return None


def _finish_all(pairs: list[tuple[TaskExecution, ResultReport]], *, now: datetime
                ) -> list[tuple[TaskExecution, bool]]:
    """Ends every row with its report; returns each row (showing its status afterwards) and whether this
    call ended it.

    The rows are locked, so the grouped compare-and-set UPDATE finds each of them as read. Should one have
    moved all the same, its group is undone (savepoint) and applied row by row through ``finish()``, whose
    own compare-and-set then decides, exactly as for a single callback.
    """
    changes = {row.pk: _final_changes(row, report, now=now) for row, report in pairs}
    by_status: dict[str, list[tuple[TaskExecution, ResultReport]]] = {}
    for row, report in pairs:
        by_status.setdefault(row.status, []).append((row, report))
    done: list[tuple[TaskExecution, bool]] = []
    for read_status, group in by_status.items():
        try:
            with transaction.atomic():
                if _update_rows(read_status, {row.pk: changes[row.pk] for row, _ in group}) != len(group):
                    raise _RowMoved
        except _RowMoved:
            done.extend((row, _finish_one(row, report, now=now)) for row, report in group)
            continue
        for row, _ in group:
            for field, value in changes[row.pk].items():
                setattr(row, field, value)
            _after_ending(row, now=now)
            done.append((row, True))
    return done


def _finish_one(row: TaskExecution, report: ResultReport, *, now: datetime) -> bool:
    """What ``apply_callback`` does with one report, on a row read again."""
    row.refresh_from_db()
    if not may_move(row.status, report.status):
        return False
    if finish(row, report.status, now=now, end_time=report.end_time,
              **_callback_changes(row, report.result, report.logs)):
        return True
    row.refresh_from_db()
    return False


class _RowMoved(Exception):
    """A locked row was not in the status it was read with: undo the grouped UPDATE."""


def _callback_changes(row: TaskExecution, result: dict | None, logs: str | None) -> dict[str, Any]:
    """What a callback writes besides the status and end: its result, and its logs after the run's own."""
    changes: dict[str, Any] = {"result": result}
    if logs:
        changes["logs"] = logs_with(row.logs, logs)
    return changes


def _final_changes(row: TaskExecution, report: ResultReport, *, now: datetime) -> dict[str, Any]:
    """The columns a report ends its run with: the status, ``_ending``'s end and duration (as ``finish``
    writes them) and the callback's result and logs."""
    return {"status": report.status, **_ending(row, now=now, end_time=report.end_time),
            **_callback_changes(row, report.result, report.logs)}


def _update_rows(read_status: str, changes: dict[str, dict[str, Any]]) -> int:
    """One UPDATE of the rows ``changes`` names that are still in ``read_status``, each to its own values.

    A column with one value for every row is set plainly; others take a CASE on the ids, whose default keeps
    the value of rows without a change to it (a report without logs leaves the logs alone).
    """
    columns: dict[str, Any] = {}
    for name in sorted({name for row_changes in changes.values() for name in row_changes}):
        values = {pk: row_changes[name] for pk, row_changes in changes.items() if name in row_changes}
        distinct = {_comparable(value) for value in values.values()}
        if len(values) == len(changes) and len(distinct) == 1:
            columns[name] = next(iter(values.values()))
        else:
            columns[name] = _per_row(name, values)
    return TaskExecution.objects.filter(pk__in=list(changes), status=read_status).update(**columns)


def _comparable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def _per_row(name: str, values: dict[str, Any]) -> Any:
    """A CASE with one branch per distinct value, naming its rows (``id IN (...)``), not one per row: a batch's
    results mostly share their values (the same end, a few durations), and a 500-branch CASE cost the web
    worker more CPU to build than the rest of the batch, and the database a comparison per branch per row."""
    field = TaskExecution._meta.get_field(name)
    rows_of: dict[Any, tuple[Any, list[str]]] = {}
    for pk, value in values.items():
        rows_of.setdefault(_comparable(value), (value, []))[1].append(pk)
    # NULL as such: a None given to a JSON column as a value would be stored as JSON null, not SQL NULL.
    whens = [When(pk__in=pks, then=Value(value, output_field=field) if value is not None else Value(None))
             for value, pks in rows_of.values()]
    case = Case(*whens, default=F(name), output_field=field)
    return Cast(case, output_field=field) if connection.features.requires_casted_case_in_updates else case


# --- live executions: log lines streamed and progress reported while a run is in flight -----------------

PROGRESS_STEP_MAX_CHARS = 255


@dataclass(frozen=True)
class LogAppend:
    appended: int
    total_chars: int
    truncated: bool


@transaction.atomic
def append_logs(*, execution_id: str, lines: list[str], now: datetime) -> LogAppend:
    """Append ``lines`` to a pending or running execution's logs (30002 otherwise), capped.

    The row is locked (SELECT ... FOR UPDATE) for the read-modify-write, so concurrent appends queue
    instead of overwriting each other; on SQLite the write transaction itself serialises them. ``now`` is
    taken for the services' uniform signature: nothing here records a time.
    """
    execution = get_execution(execution_id, for_update=True)
    if execution.status not in ACTIVE_STATUSES:
        raise _forbid(execution, "append logs to", ACTIVE_STATUSES)
    logs = logs_with(execution.logs, "\n".join(lines))
    # The status condition is belt and braces: the lock already keeps a transition out until commit.
    if TaskExecution.objects.filter(pk=execution.pk, status__in=ACTIVE_STATUSES).update(logs=logs) != 1:
        execution.refresh_from_db(fields=["status"])
        raise _forbid(execution, "append logs to", ACTIVE_STATUSES)
    return LogAppend(appended=len(lines), total_chars=len(logs), truncated=logtext.is_truncated(logs))


def report_progress(*, execution_id: str, percent: float, step: str | None = None,
                    now: datetime) -> TaskExecution:
    """Record a pending or running execution's progress (30002 otherwise).

    ``step`` None keeps the step last reported; ``""`` clears it. One conditional UPDATE: a report racing
    the run's end either lands before it or is refused.
    """
    if not (isinstance(percent, int | float) and math.isfinite(percent) and 0 <= percent <= 100):
        raise ValueError(f"percent must be a number from 0 to 100, got {percent!r}")
    if step is not None and len(step) > PROGRESS_STEP_MAX_CHARS:
        raise ValueError(f"step must be at most {PROGRESS_STEP_MAX_CHARS} characters")
    changes = {"progress_percent": float(percent), "progress_updated_at": now}
    if step is not None:
        changes["progress_step"] = step
    updated = TaskExecution.objects.filter(pk=execution_id, status__in=ACTIVE_STATUSES).update(**changes)
    execution = get_execution(execution_id)
    if updated != 1:
        raise _forbid(execution, "report progress for", ACTIVE_STATUSES)
    return execution
# --- leases (README "Leases") ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HeldRun:
    """A run an executor says it holds: the execution and the attempt it accepted."""

    execution_id: str
    attempt: int


@dataclass(frozen=True)
class LeaseRenewal:
    renewed: list[str]
    revoked: list[str]  # not (or no longer) this executor's to run: final, re-dispatched, unknown


def renew_leases(*, executor_id: str, held: Sequence[HeldRun], now: datetime) -> LeaseRenewal:
    """Renew the leases of the runs an executor holds, in one UPDATE: those still running, on this executor,
    as the attempt it names. Every other run it names is revoked: the executor must stop it."""
    wanted = {run.execution_id: run.attempt for run in held}
    rows = (TaskExecution.objects.filter(pk__in=list(wanted), executor_id=executor_id, status=ExecutionStatus.RUNNING)
            .values_list("pk", "attempt"))
    ours = [pk for pk, attempt in rows if wanted[pk] == attempt]
    if ours:
        TaskExecution.objects.filter(pk__in=ours, executor_id=executor_id, status=ExecutionStatus.RUNNING).update(
            lease_until=renewed_lease_until(now, _lease_seconds()))
    return LeaseRenewal(renewed=ours, revoked=sorted(set(wanted) - set(ours)))


def lose_run(execution: TaskExecution, *, now: datetime, why: str) -> bool:
    """End a running attempt as lost: ``failed`` with the reason, ended by the scheduler (a result finished
    within the deadline may still count), retried per the task's policy, its alert event saying "lost" (the
    flag, not the log line, tells it apart from a failure the executor reported). False if it moved meanwhile."""
    line = f"lost: {why}"
    if not finish(execution, ExecutionStatus.FAILED, now=now, expected=[ExecutionStatus.RUNNING], lost=True,
                  matching={"attempt": execution.attempt}, ended_by_scheduler=True,
                  logs=logs_with(execution.logs, line)):
        return False
    count_lost()
    logger.warning("execution %s %s", execution.pk, line, extra=execution.log_extra())
    return True


def reconcile_held(*, executor_id: str, instance_id: str, held: Sequence[HeldRun], as_of: datetime,
                   now: datetime) -> list[str]:
    """An executor (re-)registering says which runs it holds, as of ``as_of`` (its clock). Its running runs it
    does not hold, sent with an accept-by before ``as_of`` (it would have accepted them by then), are lost at
    once. Returns the runs it holds that are not its to run any more: it must stop them."""
    held_ids = {run.execution_id for run in held}
    running = TaskExecution.objects.filter(executor_id=executor_id, status=ExecutionStatus.RUNNING,
                                           accept_by__lt=as_of).exclude(pk__in=list(held_ids))
    for execution in running.select_related("task"):
        lose_run(execution, now=now, why=f"executor {instance_id} registered again without it")
    return renew_leases(executor_id=executor_id, held=held, now=now).revoked


def _lease_seconds() -> float:
    return tunable("LEASE_SECONDS")


def _withdrew_retries(pending: list[TaskExecution]) -> bool:
    """Cancel the retries (read pending) of a run whose late result is about to replace its presumed end. False
    if one moved since it was read (the leader claimed it): it has started, and the result must not be applied
    as well."""
    cancelled = [transition(retry, ExecutionStatus.CANCELLED, expected=[ExecutionStatus.PENDING],
                            logs=logs_with(retry.logs, "the run it retried reported its result late, in time"))
                 for retry in pending]
    return all(cancelled)


def _moved_on(row: TaskExecution, retries: list[TaskExecution]) -> str | None:
    """What has followed the presumed end of ``row`` (locked by the caller) that a late result must not undo,
    or None. A workflow node's end advanced its run in the same transaction (children started or skipped, or
    the run ended) unless a retry of the node still waits; a shard's may have ended its broadcast run."""
    if any(retry.status != ExecutionStatus.PENDING for retry in retries):
        return "a retry had started"
    if row.workflow_run_id is not None and not retries:
        return "its workflow run had moved on"
    if row.shard and not retries:
        parent = (TaskExecution.objects.select_for_update().filter(**row.fire_key(), retry_count=0, shard=0)
                  .values_list("status", flat=True).first())
        if parent is not None and parent not in ACTIVE_STATUSES:
            return "its broadcast run had ended"
    return None


def _took_late(row: TaskExecution, report: ResultReport, now: datetime) -> bool:
    """A result for a run the scheduler ended on its own verdict (timeout, lost), from the executor it was
    dispatched to (the caller checked), finished within the deadline (core.leases.late_result): applied unless
    what followed the presumed end has happened (``_moved_on``; a retry still pending is cancelled), else
    noted on the run and counted. Returns whether it was applied. The row is locked by the caller."""
    if not may_correct(row.status, report.status):
        return False
    retries = list(TaskExecution.objects.filter(retry_of_id=row.pk))
    moved_on = _moved_on(row, retries)
    verdict = late_result(end_time=report.end_time, deadline=row.deadline, ended_by_scheduler=row.ended_by_scheduler,
                          moved_on=moved_on is not None)
    if verdict == LateResult.REFUSE:
        return False
    if verdict == LateResult.APPLY and not _withdrew_retries(retries):
        verdict, moved_on = LateResult.RECORD, "a retry had started"  # the leader claimed it meanwhile
    ended = f"{report.end_time:%Y-%m-%d %H:%M:%S} UTC"
    if verdict == LateResult.RECORD:
        note = f"late result: {report.status} (ended {ended}, within the deadline) arrived after {moved_on}"
        TaskExecution.objects.filter(pk=row.pk).update(logs=logs_with(row.logs, note))
        count_late_result("recorded")
        logger.warning("execution %s: %s", row.pk, note, extra=row.log_extra())
        return False
    presumed = row.status
    changes = {**_ending(row, now=now, end_time=report.end_time), **_callback_changes(row, report.result, report.logs)}
    changes["logs"] = logs_with(changes.get("logs", row.logs),
                                     f"late result: {report.status} (ended {ended}) replaces the presumed {presumed}")
    if not transition(row, report.status, expected=[presumed], late=True, ended_by_scheduler=False, **changes):
        return False
    if row.shard:  # its retry, cancelled above, may have been the last shard its broadcast run waited for
        _settle_broadcast(row, now=now)
    else:
        record_run_end(row, will_retry=False, now=now, force=True)  # the alert of its presumed end may recover
        advance_after_node(row, now=now)  # a node whose retry waited: its run goes on from the success
    count_late_result("applied")
    logger.info("execution %s: late %s result applied over the presumed %s", row.pk, report.status, presumed,
                extra=row.log_extra())
    return True
