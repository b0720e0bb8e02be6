"""Firing: turn due cron times into executions, exactly once per (task, scheduled_time).

The due-time heap is the database: ``tasks.next_run_time`` under an index on (status, next_run_time).
Each tick reads only the due rows, so its cost follows the number of due tasks, not the number of
tasks, and it sees every change however it was made (API, admin, ``queryset.update``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from alerts.outbox import record_skips
from core.calendars import Blackout, CalendarError, blackout_at
from core.controls import jitter
from core.cron import CronError
from core.policy import FireAction, FirePlan, decide_fire, plan_fires
from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from executions.services import Replacement, cancel_replaced, retried_on_deadlock, stop_replaced
from scheduler_project.config import tunable
from scheduler_project.inserts import insert_new
from scheduling.leader import UNFENCED, Fence, Unfenced
from scheduling.metrics import observe_fire_lateness
from tasks.choices import ONE_SHOT_TYPES, ExecutionMode, TaskStatus
from tasks.models import BlackoutCalendar, Task

logger = logging.getLogger(__name__)

# When a task's schedule cannot be evaluated, look at it again after this long instead of every tick.
BROKEN_TASK_RETRY = timedelta(minutes=1)
# Due tasks fired per transaction. One COMMIT per task bounded a burst by the database's commit rate
# (PITFALLS §HTTP: ~6.4k single-row commits/s idle, far less under load); 100-row transactions wrote ~4x
# as many rows per second. 500: each chunk also pays a fence check, a calendar read, the grouped
# compare-and-sets and the ranking of what it staged, and at 3,000 fires/s the firing thread kept up with
# 500-row chunks (lateness p99 0.82 s) where 100-row ones fell behind (p99 3-8 s, growing). A chunk's
# transaction holds its tasks' rows for ~0.1 s: an edit of one of them waits that long.
FIRE_CHUNK_SIZE = 500


def due_tasks(now: datetime, limit: int, ahead: timedelta = timedelta(0)) -> list[Task]:
    """Active tasks due at ``now``, and the uncapped ones (see ``fires_ahead``) due within ``ahead``."""
    due = Q(next_run_time__lte=now)
    if ahead > timedelta(0):
        due |= Q(next_run_time__lte=now + ahead, execution_mode=ExecutionMode.PARALLEL, max_instances__isnull=True)
    return list(Task.objects.filter(due, status=TaskStatus.ACTIVE).order_by("next_run_time", "-priority")[:limit])


def blackouts_of(tasks: list[Task]) -> dict[str, list[Blackout]]:
    """The blackout calendars of a chunk's tasks, parsed: one query on the link table (most tasks have
    none, and Django's prefetch machinery cost a quarter more CPU per fire), a second only if some do."""
    through = Task.calendars.through.objects
    if not through.exists():  # no task has a calendar: a query of one row instead of one naming every task
        return {}
    links = list(through.filter(task_id__in=[task.pk for task in tasks]).values_list("task_id", "blackoutcalendar_id"))
    if not links:
        return {}
    calendars = BlackoutCalendar.objects.in_bulk({calendar_id for _, calendar_id in links})
    parsed = {calendar_id: _parsed(calendar) for calendar_id, calendar in calendars.items()}
    by_task: dict[str, list[Blackout]] = defaultdict(list)
    for task_id, calendar_id in links:
        if parsed.get(calendar_id) is not None:
            by_task[task_id].append(parsed[calendar_id])
    return by_task


def _parsed(calendar: BlackoutCalendar) -> Blackout | None:
    """A calendar the API and console checked; one edited into the database unreadable is logged and left
    out (its tasks fire through it) rather than stopping every task of the chunk."""
    try:
        return calendar.blackout()
    except CalendarError as exc:
        logger.error("blackout calendar %s (%s) cannot be read, ignored: %s", calendar.pk, calendar.name, exc)
        return None


def busy_counts(tasks: list[Task]) -> dict[str, tuple[int, int]]:
    """(running, waiting) executions per task id, in one query for a whole chunk of due tasks."""
    rows = (
        TaskExecution.objects.filter(task_id__in=[t.pk for t in tasks], shard=0,  # a broadcast run counts once
                                     status__in=[ExecutionStatus.RUNNING, ExecutionStatus.PENDING])
        .values("task_id")
        .annotate(running=Count("id", filter=Q(status=ExecutionStatus.RUNNING)),
                  waiting=Count("id", filter=Q(status=ExecutionStatus.PENDING)))
    )
    return {row["task_id"]: (row["running"], row["waiting"]) for row in rows}


def _execution(task: Task, scheduled: datetime, now: datetime, *, status: str, logs: str = "") -> TaskExecution:
    finished = status != ExecutionStatus.PENDING
    return TaskExecution(
        task=task, scheduled_time=scheduled, status=status, trigger_type=TriggerType.SCHEDULED,
        parameters=task.parameters or {}, dispatch_after=dispatch_time(task, scheduled, now), logs=logs,
        end_time=now if finished else None,
    )


def dispatch_time(task: Task, scheduled: datetime, now: datetime) -> datetime:
    """When a run fired at ``now`` for ``scheduled`` may be dispatched: its time plus the task's jitter, or
    now if that has passed. The jitter is a function of (task, scheduled time), so a new leader firing the
    same time picks the same instant; ``scheduled_time`` stays the fire time."""
    return max(now, scheduled + jitter(task.pk, scheduled, task.jitter_seconds))


def _misfire_note(plan: FirePlan, policy: str) -> str:
    more = " or more" if plan.more_missed else ""
    return f"misfire: {plan.missed}{more} fire time(s) passed while no scheduler was leading (policy {policy})"


def fires_ahead(task: Task) -> bool:
    """Whether the task's runs may be created before their time: only when creating one never depends on
    what is running then (parallel mode, no max_instances). A sequential or capped task decides at its
    fire time, from the runs in progress at that moment."""
    return task.execution_mode == ExecutionMode.PARALLEL and task.max_instances is None


def executions_for(task: Task, plan: FirePlan, now: datetime, busy: tuple[int, int],
                   blackouts: list[Blackout] | None = None) -> list[TaskExecution]:
    """The rows one task's plan produces: skipped misfires, skipped fires in a blackout, then each run
    through the execution mode. ``busy`` is the task's (running, waiting) executions before this fire."""
    note = _misfire_note(plan, task.misfire_policy) if plan.missed else ""
    rows = [_execution(task, t, now, status=ExecutionStatus.SKIPPED, logs=note) for t in plan.skip]
    running, waiting = busy
    for scheduled in plan.run:
        blackout = blackout_at(blackouts or [], scheduled)
        if blackout is not None:
            rows.append(_execution(task, scheduled, now, status=ExecutionStatus.SKIPPED,
                                   logs=_joined(note, f"{BLACKOUT_NOTE}{blackout}")))
            continue
        decision = decide_fire(task.execution_mode, running=running, waiting=waiting,
                               max_instances=task.max_instances)
        if decision.action is FireAction.SKIP:  # keep the misfire note: under fire_once it is the only record
            rows.append(_execution(task, scheduled, now, status=ExecutionStatus.SKIPPED,
                                   logs=_joined(note, decision.reason)))
            continue
        if decision.action is FireAction.REPLACE:
            _replace_within_plan(rows, scheduled, now)
            waiting = 0
        rows.append(_execution(task, scheduled, now, status=ExecutionStatus.PENDING, logs=note))
        waiting += 1
    return rows


# The log line of a fire skipped because it fell in a blackout calendar: skipped on purpose, so not alerted.
BLACKOUT_NOTE = "blackout: "


def _alerted(rows: list[TaskExecution]) -> list[TaskExecution]:
    """The rows whose skip is news (``alerts.outbox.record_skips``): not the fires a blackout calendar was
    made to skip."""
    return [row for row in rows if not any(line.startswith(BLACKOUT_NOTE) for line in row.logs.splitlines())]


def _joined(*lines: str) -> str:
    return "\n".join(line for line in lines if line)


def _replace_within_plan(rows: list[TaskExecution], scheduled: datetime, now: datetime) -> None:
    """Replace mode, several runs in one plan (a misfire under fire_all): only the newest stays pending."""
    for row in rows:
        if row.status == ExecutionStatus.PENDING:
            row.status, row.end_time = ExecutionStatus.CANCELLED, now
            row.logs = _joined(row.logs, f"replaced by the fire at {scheduled.isoformat()}")


def _replacement(task: Task, rows: list[TaskExecution], busy: tuple[int, int], now: datetime) -> Replacement | None:
    """Replace mode: the run that replaces the runs in progress, held back while they are being stopped."""
    if task.execution_mode != ExecutionMode.REPLACE or busy == (0, 0):
        return None
    new = next((row for row in reversed(rows) if row.status == ExecutionStatus.PENDING), None)
    if new is None:
        return None
    replacement = Replacement(task_id=task.pk, run_id=new.pk, dispatch_after=new.dispatch_after,
                              scheduled_time=new.scheduled_time)
    new.dispatch_after = replacement.held_until(now)
    return replacement


@dataclass
class Fire:
    """One due task, planned: the rows to insert if the compare-and-set on its next_run_time wins."""

    task: Task
    plan: FirePlan
    rows: list[TaskExecution]
    replacement: Replacement | None = None  # replace mode: the runs in progress this fire cancels


def plan_task(task: Task, now: datetime, ahead: timedelta = timedelta(0)) -> FirePlan:
    schedule = task.schedule()
    return plan_fires(
        first_due=task.next_run_time, now=now, next_after=schedule.next_after, prev_before=schedule.prev_before,
        policy=task.misfire_policy, misfire_threshold=timedelta(seconds=tunable("MISFIRE_THRESHOLD_SECONDS")),
        limit=tunable("MISFIRE_FIRE_ALL_LIMIT"), horizon=now + ahead if fires_ahead(task) else now,
    )


def plan_key(task: Task) -> tuple:
    """What a task's plan depends on, besides the time: tasks due together with equal keys (a burst of
    one-shots, many tasks on one cron) share one plan, so the cron is walked once, not once per task."""
    return (task.schedule_type, task.cron_expression, task.timezone, task.interval_seconds, task.window_start(),
            task.end_at, task.run_at, task.next_run_time, task.misfire_policy, fires_ahead(task))


def prepare_fires(tasks: list[Task], now: datetime, ahead: timedelta = timedelta(0)) -> list[Fire]:
    """Plan every task of a chunk before writing anything, so a bad schedule (or mode) parks only its own
    task and never aborts a transaction that holds the others' writes."""
    capped = [task for task in tasks if not fires_ahead(task)]
    busy = busy_counts(capped) if capped else {}
    calendars = blackouts_of(tasks)
    fires = []
    plans: dict[tuple, FirePlan] = {}
    for task in tasks:
        try:
            key = plan_key(task)
            plan = plans.get(key) or plans.setdefault(key, plan_task(task, now, ahead))
            task_busy = busy.get(task.pk, (0, 0))
            rows = executions_for(task, plan, now, task_busy, calendars.get(task.pk))
            fires.append(Fire(task, plan, rows, _replacement(task, rows, task_busy, now)))
        except (CronError, CalendarError, ValueError) as exc:
            _park_broken_task(task, now, exc)
    return fires


def _finishes(fire: Fire) -> bool:
    return fire.plan.next_run_time is None and fire.task.schedule_type in ONE_SHOT_TYPES


def _advance(fire: Fire, now: datetime) -> bool:
    """Compare-and-set on the next_run_time we read: an edit made meanwhile (API, another leader) wins, and
    this fire is re-planned next tick."""
    task = fire.task
    return bool(Task.objects.filter(pk=task.pk, status=TaskStatus.ACTIVE, next_run_time=task.next_run_time)
                .update(next_run_time=fire.plan.next_run_time, **({"finished_at": now} if _finishes(fire) else {})))


def _advance_all(fires: list[Fire], now: datetime) -> int:
    """Every compare-and-set of a chunk, one UPDATE per (next_run_time read, next_run_time planned, finishes)
    group: tasks due together mostly move together (a burst of one-shots, every-second crons), so a chunk
    is usually one or two statements. (A CASE per task cost ~40 ms of ORM CPU per 100 tasks.) Each task
    moves only from the next_run_time we read. Returns how many moved."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for fire in fires:
        groups[(fire.task.next_run_time, fire.plan.next_run_time, _finishes(fire))].append(fire.task.pk)
    moved = 0
    for (read, planned, finishes), ids in groups.items():
        moved += Task.objects.filter(pk__in=ids, status=TaskStatus.ACTIVE, next_run_time=read).update(
            next_run_time=planned, **({"finished_at": now} if finishes else {}))
    return moved


class ChunkChanged(Exception):
    """A task of the chunk changed after it was read: the chunk is redone task by task."""


@retried_on_deadlock
def _write_together(fires: list[Fire], now: datetime, fence: Fence | Unfenced) -> list[Fire]:
    """The fast path: grouped compare-and-sets, one multi-row INSERT, one transaction (fenced: it commits
    only within the leader's term). A chunk locks many task rows and index gaps, so it can meet a concurrent
    writer (tasks created in bulk, a claim) in a deadlock; the database rolled it all back, and the unsaved
    rows make running it again safe."""
    with fence.atomic():
        if _advance_all(fires, now) != len(fires):
            raise ChunkChanged
        rows = [row for fire in fires for row in fire.rows]
        insert_new(rows)
        record_skips(_alerted(rows), now=now)
        _cancel_replaced(fires, now)
    return fires


def _cancel_replaced(fires: list[Fire], now: datetime) -> None:
    for fire in fires:
        if fire.replacement is not None:
            cancel_replaced(fire.replacement, now=now)


def _write_one_by_one(fires: list[Fire], now: datetime, fence: Fence | Unfenced) -> list[Fire]:
    """The conflict path: one (fenced) transaction, a savepoint per task, so a fire another node already
    recorded (the unique fire key) rolls back only that task's advance and rows."""
    advanced = []
    with fence.atomic():
        for fire in fires:
            try:
                with transaction.atomic():
                    if _advance(fire, now):
                        insert_new(fire.rows)
                        record_skips(_alerted(fire.rows), now=now)
                        _cancel_replaced([fire], now)
                        advanced.append(fire)
            except IntegrityError:
                task = fire.task
                logger.warning("task %s (%s): fire at %s already recorded by another node", task.pk, task.name,
                               task.next_run_time.isoformat(), extra=task.log_extra())
    return advanced


def fire_chunk(tasks: list[Task], now: datetime, ahead: timedelta = timedelta(0),
               on_written: Callable[[list[TaskExecution]], None] | None = None,
               fence: Fence | Unfenced = UNFENCED,
               on_replaced: Callable[[list[Replacement]], None] | None = None) -> int:
    """Fire a chunk of due tasks in one transaction. Returns the number of executions written.

    A task edited since it was read, or a fire a split-brain leader already inserted, makes the chunk's
    writes fail as a whole; that rare case is redone task by task, so only that task loses its fire.
    """
    fires = prepare_fires(tasks, now, ahead)
    if not fires:
        return 0
    try:
        advanced = _write_together(fires, now, fence)
    except (IntegrityError, ChunkChanged):
        # Everything was rolled back; the unsaved row instances (ids chosen client-side) are reused.
        advanced = _write_one_by_one(fires, now, fence)
    for fire in advanced:
        _after_fire(fire, now)
    if on_written is not None:
        on_written([row for fire in advanced for row in fire.rows])
    replacements = [fire.replacement for fire in advanced if fire.replacement is not None]
    if replacements:
        (on_replaced or stop_replaced_now)(replacements)
    return sum(len(fire.rows) for fire in advanced)


def _after_fire(fire: Fire, now: datetime) -> None:
    for scheduled in fire.plan.run:
        observe_fire_lateness(max(0.0, (now - scheduled).total_seconds()))  # fired ahead: not late
    if fire.plan.missed:
        task = fire.task
        logger.warning("task %s (%s): %s", task.pk, task.name, _misfire_note(fire.plan, task.misfire_policy),
                       extra=task.log_extra())


def fire_task(task: Task, now: datetime) -> int:
    """Fire one due task (a chunk of one). Returns the number of executions written."""
    return fire_chunk([task], now)


def _park_broken_task(task: Task, now: datetime, error: Exception) -> None:
    """One bad task logs and moves its next run forward; it never crash-loops the scheduler."""
    logger.error("task %s (%s): cannot fire: %s; retrying in %s", task.pk, task.name, error, BROKEN_TASK_RETRY,
                 extra=task.log_extra())
    Task.objects.filter(pk=task.pk, next_run_time=task.next_run_time).update(next_run_time=now + BROKEN_TASK_RETRY)


def stop_replaced_now(replacements: list[Replacement]) -> None:
    """Without an engine (tests, ``fire_task``): stop the replaced runs on this thread."""
    for replacement in replacements:
        stop_replaced(replacement)


def fire_due(now: datetime, *, still_leading: Callable[[], bool] | None = None,
             ahead: timedelta = timedelta(0), on_written: Callable[[list[TaskExecution]], None] | None = None,
             fence: Fence | Unfenced = UNFENCED,
             on_replaced: Callable[[list[Replacement]], None] | None = None) -> int:
    """Step: fire the tasks due at ``now`` (up to FIRE_BATCH_SIZE, most overdue first, then by priority), in
    chunks of FIRE_CHUNK_SIZE, one transaction each. ``still_leading`` is the engine's fencing check, asked
    before each chunk after the first: a leader that lost its lock mid-step stops writing. With ``ahead``,
    tasks that fire ahead also get their runs due within it, pending until their scheduled time (the
    dispatcher stages them, so a burst due in the same second is only POSTed when it comes). ``on_written``
    gets each chunk's committed rows (with their tasks). ``fence`` checks the leader's term in each chunk's
    transaction (raises ``Deposed`` if it is over). ``on_replaced`` gets the replace-mode fires whose cancelled
    runs must now be stopped on their executors (the engine does it on a worker thread). Returns executions
    written."""
    due = due_tasks(now, tunable("FIRE_BATCH_SIZE"), ahead)
    written = 0
    for start in range(0, len(due), FIRE_CHUNK_SIZE):
        if start and still_leading is not None and not still_leading():
            break
        written += fire_chunk(due[start:start + FIRE_CHUNK_SIZE], now, ahead, on_written, fence, on_replaced)
    return written
