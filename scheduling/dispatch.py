"""Dispatch: hand pending executions to executors.

The leader's loop thread decides (which execution, which executors in which order: one ranking pass per
step, its state saved in one transaction) and claims a step's executions (pending -> running, a new
attempt with its accept-by and first lease) before any POST, so an executor's callback always finds its
run running. (The runs the leader fires ahead are ranked and signed on its firing thread, which hands them
over: ``prepare_staged``, ``add_staged``.) ``staging`` holds the runs due soon, ``delivery`` sends the POSTs
and fails over; ``sweeps``
ends the runs whose timeout passed or whose lease ran out. A broadcast run fans out here (``broadcast``):
each of its shards is claimed, sent, leased and swept as a run of its own.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Count

from core.leases import accept_by_for, first_lease_until, overdue_runs
from core.policy import ONE_AT_A_TIME, deadline_for, may_dispatch
from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from executions.services import finish, logs_with, record_sent, release_unsent, transition_many
from loadbalance.services import Rankings
from scheduler_project.config import tunable
from scheduling.broadcast import rank_all
from scheduling.delivery import QUEUED_PER_WORKER, Delivery
from scheduling.leader import UNFENCED
from scheduling.staging import Staged, Staging, waits_its_turn
from scheduling.sweeps import Sweeper

logger = logging.getLogger(__name__)
__all__ = ["QUEUED_PER_WORKER", "Dispatcher"]

# Executions claimed per UPDATE when a step's claims at due time are pipelined with the POSTs: the first POSTs
# leave after one UPDATE instead of after the whole step's. 500, not 100: at 10,000 due at once the claims'
# transactions, not their rows, were what the tail waited for (p99 1.05 -> 0.98 s with all else equal).
CLAIM_CHUNK = 500
# A run claimed ahead carries its due time as start_time; one whose POST left later than this after it gets
# the time it left instead (record_sent). Within it, the due time is the start time to the milliseconds.
SENT_LATE = timedelta(milliseconds=500)


class Dispatcher:
    """The leader's dispatch steps: ``dispatch_pending`` (claim and send what is due, stage what is due
    soon), ``sweep_timeouts`` and ``sweep_leases``. ``delivery`` holds the transport seams tests swap."""

    fence = UNFENCED  # the engine sets its leadership term's fence: claims, timeouts and lost runs check it

    def __init__(self, *, clock: Callable[[], datetime], workers: int, rng: random.Random | None = None,
                 stage_ahead: timedelta = timedelta(0), claim_ahead: timedelta = timedelta(0),
                 hold_ahead: timedelta | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - load balancing, not security
        self.delivery = Delivery(clock=clock, workers=workers)
        self.staging = Staging(rng=self.rng, stage_ahead=stage_ahead, claim_ahead=claim_ahead,
                               prepare=self.delivery.prepare_first, hold_ahead=hold_ahead)
        self.sweeper = Sweeper(pool=self.delivery.pool, busy=self._busy, fenced=lambda: self.fence.atomic())
        # When this dispatcher began leading: runs due before it were due while no leader sent them.
        self._leading_since: datetime | None = None
        self._stale: set[str] = set()  # staged runs handed back because their send came too late

    @property
    def pool(self):
        return self.delivery.pool

    # --- loop-thread steps ------------------------------------------------------------------------

    def dispatch_pending(self, now: datetime) -> int:
        """Step: start dispatching every pending execution whose time has come, then stage the ones due
        within ``stage_ahead``. Returns how many were started."""
        if self._leading_since is None:
            self._leading_since = now
        self.staging.promote(now)
        started = self._start(self._fresh(self.staging.take_due(now, self.delivery.room()), now), now)
        if not self.staging.any_due(now):  # else the workers' queue is full: the rest waits for the next step
            ready = self._ready(now)
            if ready:
                rankings = Rankings([execution.task for execution in ready], self.rng)
                # A broadcast run's shards are created here (fenced: a leader write), each ranked to its executor.
                ranked = [Staged.of(execution, ranking)
                          for execution, ranking in rank_all(ready, rankings, now, atomic=self.fence.atomic)]
                # Saved before any worker starts: a failover recorded by a worker must land after this state.
                rankings.save(now)
                started += self._start(ranked, now)
        self.staging.scan(now)
        self._claim_soon(now)
        self._check_soon(now)
        return started

    def stage(self, written: list[TaskExecution], now: datetime) -> None:
        self.staging.stage(written, now)

    def prepare_staged(self, written: list[TaskExecution], now: datetime) -> list[Staged]:
        """``stage`` in two halves: this one on the firing thread, ``add_staged`` on the loop thread."""
        return self.staging.prepared(written, now)

    def add_staged(self, items: list[Staged], now: datetime) -> None:
        self.staging.add(items, now)

    def next_due(self) -> datetime | None:
        return self.staging.next_due()

    def forget_staged(self) -> None:
        """On losing leadership: another leader now owns what was staged. The runs claimed ahead were never
        POSTed: they are handed back as pending, so the next leader dispatches them (or applies their
        misfire policy) instead of its lease sweep failing them."""
        self._leading_since = None
        self._stale.clear()
        unsent = self.staging.forget()
        if unsent:
            try:
                release_unsent(unsent)
            except DatabaseError as exc:
                logger.warning("could not hand back %s runs claimed ahead: %s", len(unsent), exc)

    def _fresh(self, due: list[Staged], now: datetime) -> list[Staged]:
        """The due staged runs whose planned attempt can still be sent. A run whose accept-by is (nearly)
        past, because this leader stalled, would be refused: a claimed one is handed back (pending), and
        either way it is decided again from the database, by its misfire policy if it is late. A run claimed
        ahead that something else ended meanwhile (a stop, a pause) is never sent: it is read again within
        ``staging.CHECK_AHEAD`` of its POST (by ``_check_soon``, or here), on this thread, after every step
        that could end it here."""
        margin = timedelta(seconds=tunable("DISPATCH_TIMEOUT_SECONDS") / 2)
        stale = {item.execution.pk for item in due if item.accept_by is not None and item.accept_by - now < margin}
        if stale:
            release_unsent([item.execution.pk for item in due if item.claimed and item.execution.pk in stale])
            self._stale |= stale
        fresh = [item for item in due if item.execution.pk not in stale]
        unchecked = [item for item in fresh if item.needs_check()]
        if unchecked:
            still = self._still_claimed(unchecked)
            gone = {item.execution.pk for item in unchecked if (item.execution.pk, item.attempt) not in still}
            fresh = [item for item in fresh if item.execution.pk not in gone]
        return fresh

    def _check_soon(self, now: datetime) -> None:
        """Read again the runs claimed ahead that are due within ``staging.CHECK_AHEAD``, so that when they are
        due only their POSTs remain (``_fresh`` reads the ones this missed)."""
        soon = self.staging.soon_to_check(now)
        if soon:
            self.staging.checked(soon, self._still_claimed(soon), now)

    @staticmethod
    def _still_claimed(items: list[Staged]) -> set[tuple[str, int]]:
        """(id, attempt) of those of ``items`` still running as claimed."""
        return set(TaskExecution.objects.filter(pk__in=[item.execution.pk for item in items],
                                                status=ExecutionStatus.RUNNING).values_list("pk", "attempt"))

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
            # After the POSTs are on their way, so it delays none of them; and only for runs that left well
            # after their time (the leader stalled), whose start_time would otherwise say they started then.
            # An UPDATE of a whole burst's rows while their callbacks arrive delayed the burst's tail.
            late = [item.execution.pk for item in claimed_ahead
                    if sent_at - item.execution.start_time > SENT_LATE]
            if late:
                record_sent(late, sent_at)
        assignable = [item for item in ranked if item.ranking.executors and not item.claimed]
        margin = timedelta(seconds=tunable("DISPATCH_TIMEOUT_SECONDS") / 2)
        for item in assignable:  # planned when staged, but claimed late: a new accept-by, signed again
            if item.accept_by is not None and item.accept_by - now < margin:
                item.plan(None)
        for first in range(0, len(assignable), CLAIM_CHUNK):
            chunk = assignable[first:first + CLAIM_CHUNK]
            claimed = self._claim(chunk)
            self._launch([item for item in chunk if item.execution.pk in claimed])
        return len(ranked)

    def _launch(self, items: list[Staged]) -> None:
        self.delivery.launch([(item.execution, item.ranking.executors, item.request) for item in items])

    def _claim_soon(self, now: datetime) -> None:
        """Claim the staged runs due within ``claim_ahead``, as many as the workers may have in flight."""
        soon = self.staging.soon_to_claim(now, self.delivery.room())
        if soon:
            self.staging.claimed(soon, self._claim(soon), now)

    def _capacity(self) -> int:
        """How many more executions one step may claim from the database now."""
        return min(tunable("FIRE_BATCH_SIZE"), self.delivery.room())

    def _claim(self, items: list[Staged]) -> set[str]:
        """Claim the step's executions (pending -> running) before any POST, so an executor's callback always
        finds its run running: one UPDATE per (first executor, timeout, start, attempt) instead of a COMMIT
        per execution on the workers. Each becomes its planned attempt, with its accept-by (planned when
        staged, or from the start) and first lease. The timeout counts from the claim, or from the due time
        of a run claimed ahead of it. Returns the ids claimed; a run stopped meanwhile is left alone."""
        now = self.clock()
        dispatch_timeout, lease = tunable("DISPATCH_TIMEOUT_SECONDS"), tunable("LEASE_SECONDS")
        groups: dict[tuple, list[Staged]] = defaultdict(list)
        for item in items:
            execution = item.execution
            start = max(now, execution.dispatch_after or now)
            accept_by = item.accept_by or accept_by_for(start, dispatch_timeout)
            item.plan(accept_by, item.request)
            groups[(item.ranking.executors[0].pk, execution.task.timeout_seconds, start, accept_by,
                    item.attempt)].append(item)
        claimed: set[str] = set()
        with self.fence.atomic():  # refused (Deposed) if another leader was elected meanwhile: nothing is sent
            for (executor_id, timeout, start, accept_by, attempt), group in groups.items():
                changes = {"executor_id": executor_id, "start_time": start,
                           "deadline": deadline_for(start, timeout), "attempt": attempt, "accept_by": accept_by,
                           "lease_until": first_lease_until(accept_by, lease)}
                moved = transition_many([item.execution.pk for item in group], ExecutionStatus.RUNNING,
                                        expected=ExecutionStatus.PENDING, matching={"attempt": attempt - 1},
                                        **changes)
                for item in group:
                    if item.execution.pk in moved:
                        item.execution.status = ExecutionStatus.RUNNING
                        for field, value in changes.items():
                            setattr(item.execution, field, value)
                claimed |= moved
        return claimed

    def _busy(self) -> set[str]:
        """Runs whose dispatch this leader has not finished: in flight, or claimed ahead and not sent."""
        return self.delivery.busy() | self.staging.claimed_ids()

    def _ready(self, now: datetime) -> list[TaskExecution]:
        """Pending executions due at ``now``, not already being dispatched, highest task priority first,
        minus the runs that must wait for the one in progress (one-at-a-time modes, backfills: ``may_dispatch``)
        and the runs fired ahead that no leader sent in time and whose misfire policy says skip."""
        busy = self.delivery.busy()
        batch = self._capacity()
        if batch <= 0:
            return []
        rows = list(
            TaskExecution.objects.filter(status=ExecutionStatus.PENDING, dispatch_after__lte=now)
            .select_related("task")
            .order_by("-task__priority", "dispatch_after", "scheduled_time", "id")[: batch + len(busy)]
        )
        rows = self._not_missed([row for row in rows if row.pk not in busy][:batch], now)
        running = self._running_sequential(rows, busy)
        ready = []
        for execution in rows:
            task = execution.task
            if execution.shard:  # its broadcast run passed the mode's gate when it fanned out
                ready.append(execution)
                continue
            if not may_dispatch(task.execution_mode, trigger_type=execution.trigger_type,
                                running=running.get(task.pk, 0), max_instances=task.max_instances):
                continue  # waits for the run in progress (one-at-a-time modes, backfills)
            if waits_its_turn(execution):
                running[task.pk] = running.get(task.pk, 0) + 1
            ready.append(execution)
        return ready

    def _missable(self, row: TaskExecution) -> bool:
        """A scheduled first attempt that was due while no leader could send it: before this one led, or
        staged here and handed back too late (one-at-a-time runs wait by design; retries, triggers, backfills
        and broadcast shards, whose run was decided when it fanned out, are sent whatever the lateness)."""
        return (row.trigger_type == TriggerType.SCHEDULED and row.retry_count == 0 and not row.shard
                and row.task.execution_mode not in ONE_AT_A_TIME
                and (row.pk in self._stale or row.dispatch_after < self._leading_since))

    def _not_missed(self, rows: list[TaskExecution], now: datetime) -> list[TaskExecution]:
        """Apply each task's misfire policy to its runs that missed their time (core.leases.overdue_runs);
        returns the rows still to send, and records the others as skipped."""
        threshold = timedelta(seconds=tunable("MISFIRE_THRESHOLD_SECONDS"))
        by_task: dict[str, list[TaskExecution]] = defaultdict(list)
        for row in rows:
            if self._missable(row) and now - row.dispatch_after > threshold:
                by_task[row.task_id].append(row)
        skipped: set[str] = set()
        for late in by_task.values():
            task = late[0].task
            missed = task.next_run_time is not None and now - task.next_run_time > threshold
            _, skip = overdue_runs(task.misfire_policy, [row.dispatch_after for row in late], now=now,
                                   threshold=threshold, task_fire_missed=missed)
            for row in late:
                if row.dispatch_after in skip and self._skip_missed(row, now):
                    skipped.add(row.pk)
        self._stale.difference_update(row.pk for row in rows)
        return [row for row in rows if row.pk not in skipped]

    @staticmethod
    def _skip_missed(row: TaskExecution, now: datetime) -> bool:
        # The firing step's misfire note (scheduling.firing), for a run that existed but was never sent.
        reason = (f"misfire: 1 fire time(s) passed while no scheduler was leading (policy {row.task.misfire_policy}):"
                  f" created ahead, due {row.dispatch_after:%Y-%m-%d %H:%M:%S} UTC, never sent")
        logger.warning("execution %s of task %s skipped: %s", row.pk, row.task.name, reason, extra=row.log_extra())
        return finish(row, ExecutionStatus.SKIPPED, now=now, logs=logs_with(row.logs, reason))

    def _running_sequential(self, rows: list[TaskExecution], busy: set[str]) -> dict[str, int]:
        """Running (or being dispatched) executions per task of this batch whose runs wait their turn (a
        broadcast run counts once, not per shard)."""
        task_ids = {row.task_id for row in rows if waits_its_turn(row)}
        if not task_ids:
            return {}
        counts = dict(
            TaskExecution.objects.filter(task_id__in=task_ids, status=ExecutionStatus.RUNNING, shard=0)
            .values("task_id").annotate(n=Count("id")).values_list("task_id", "n")
        )
        for row in TaskExecution.objects.filter(pk__in=busy, task_id__in=task_ids, shard=0).values("task_id"):
            counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
        return counts

    def _fail_unassignable(self, execution: TaskExecution, assigned: int, now: datetime) -> None:
        labels = execution.task.executor_labels
        matching = f" and carrying the labels {labels}" if labels else ""
        reason = (f"no eligible executor: {assigned} assigned, none online and healthy{matching}"
                  if assigned else "no eligible executor: none is assigned to this task")
        logger.warning("execution %s of task %s failed: %s", execution.pk, execution.task.name, reason,
                       extra=execution.log_extra())
        with self.fence.atomic():  # a leader's verdict (a broadcast shard's end settles its run here too)
            finish(execution, ExecutionStatus.FAILED, now=now, logs=logs_with(execution.logs, reason))

    # --- sweeps and lifecycle ---------------------------------------------------------------------

    def sweep_timeouts(self, now: datetime) -> int:
        return self.sweeper.sweep_timeouts(now)

    def sweep_leases(self, now: datetime) -> int:
        return self.sweeper.sweep_leases(now)

    def in_flight(self) -> int:
        return self.delivery.in_flight()

    def wait_idle(self, timeout: float) -> bool:
        return self.delivery.wait_idle(timeout)

    def shutdown(self, wait: bool = True) -> None:
        self.delivery.shutdown(wait)
