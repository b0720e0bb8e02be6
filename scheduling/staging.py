"""Staging: pending executions due soon, loaded, ranked and their first POST signed before their time.

Pending executions due within ``stage_ahead`` (runs fired ahead, retries waiting out their backoff), but for
those decided only when due (``decided_when_due``: one-at-a-time modes, backfills, broadcast), are held in
memory by the leader's loop thread, so when their time comes only the claim and the POST remain;
``next_due()`` tells the loop when to wake for them. They stay pending in the database until claimed: a
leader that dies leaves them to the next one, and one cancelled meanwhile (task paused) loses its claim's
compare-and-set. A jittered run is staged, claimed ahead and sent by its ``dispatch_after`` (scheduled time
plus jitter), never its scheduled time. The runs this leader fires ahead come prepared from its firing
thread (``prepared``, then ``add`` on the loop thread); those due beyond ``stage_ahead`` (it fires up to
FIRE_AHEAD_SECONDS ahead) are held aside and staged once within it (``promote``).

Claiming ahead (``claim_ahead``): staged runs due within ``claim_ahead`` are claimed before their time
(their timeout and accept-by count from their due time), so a burst's claims are written before it is due
and only the POSTs remain when it is. A leader that steps down hands the ones it has not sent back (pending
again); one killed leaves them to the lease sweep (they were never accepted: lost, and retried).
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from core.leases import accept_by_for
from core.policy import ONE_AT_A_TIME
from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from executors.netguard import RefusedURL
from loadbalance.services import Ranking, Rankings
from scheduler_project.config import tunable
from tasks.choices import LoadBalanceStrategy

# Pending executions due soon held in memory (bounds the memory: ~3 KB each with the signed request). It should
# cover what fires within stage_ahead (STAGE_AHEAD, 2 s); runs left out are claimed and signed only when
# due, on the slower path. At 1,500 fires/s (bench ramp, one run each) 2,000 gave lateness p99 0.65 s,
# 10,000 0.52 s.
STAGE_LIMIT = 10_000
# Runs this leader fired further ahead than ``stage_ahead`` (up to FIRE_AHEAD_SECONDS), prepared by the firing
# thread and held aside until they come within it (``promote``): a burst is fired seconds before it is due,
# and the staged set, which every step walks, stays the size of what is due within stage_ahead.
HOLD_LIMIT = 20_000
# How far ahead runs are staged (or, if fired earlier, promoted from the held ones).
STAGE_AHEAD = timedelta(seconds=2)
# How long before its time a run claimed ahead is read again (``Staged.needs_check``): the read leaves the
# moment its POST is due (a burst's thousand ids cost ~13 ms on MariaDB), where a stop that comes in between
# meets the run on its executor, as any stop of a run just sent.
CHECK_AHEAD = timedelta(milliseconds=50)
# How often the database is searched for runs to stage. Runs the leader fires ahead itself are staged as
# they are written; the search finds the others (retries waiting out a backoff, another leader's fires).
STAGE_SCAN_SECONDS = 1.0


@dataclass
class Staged:
    """A pending execution ready to go: its ranked executors and the attempt it will be sent as
    (``attempt``, ``accept_by``: None until planned), with its first POST once prepared."""

    execution: TaskExecution
    ranking: Ranking
    attempt: int = 0
    accept_by: datetime | None = None
    request: Any = None
    claimed: bool = False  # claimed ahead of its time: running in the database, its POST not sent yet
    checked_at: datetime | None = None  # when the database last said it is still claimed (claimed ahead only)
    due: datetime | None = None  # while staged: the due time it is filed under
    order: tuple = ()  # while staged: its dispatch_order, computed once

    def needs_check(self) -> bool:
        """A run claimed ahead is read again before its POST leaves (something else may have ended it: a
        stop, a pause), unless that was done within CHECK_AHEAD of its time."""
        return self.claimed and (self.checked_at is None
                                 or self.execution.dispatch_after - self.checked_at > CHECK_AHEAD)

    @classmethod
    def of(cls, execution: TaskExecution, ranking: Ranking) -> Staged:
        return cls(execution, ranking, attempt=execution.attempt + 1)

    def plan(self, accept_by: datetime | None, request: Any = None) -> None:
        self.accept_by, self.request = accept_by, request


def dispatch_order(item: Staged) -> tuple:
    execution = item.execution
    return -execution.task.priority, execution.dispatch_after, execution.scheduled_time, execution.pk


def waits_its_turn(execution: TaskExecution) -> bool:
    """Whether the run may start only while few enough of its task's runs are running (``may_dispatch``):
    one-at-a-time modes and backfills."""
    return execution.task.execution_mode in ONE_AT_A_TIME or execution.trigger_type == TriggerType.BACKFILL


def decided_when_due(execution: TaskExecution) -> bool:
    """Whether the run is never staged ahead: it waits its turn, or it fans out when due (broadcast: its
    shards are created, claimed and sent in the step that finds it due)."""
    return waits_its_turn(execution) or execution.task.load_balance_strategy == LoadBalanceStrategy.BROADCAST


# prepare(execution, executor, attempt=, accept_by=, checked=) -> a signed request; raises RefusedURL
Prepare = Callable[..., Any]


class Staging:
    """The staged executions of one leader (loop thread only, but ``prepared``: the firing thread's half)."""

    def __init__(self, *, rng: random.Random, stage_ahead: timedelta, claim_ahead: timedelta,
                 prepare: Prepare, hold_ahead: timedelta | None = None) -> None:
        """``hold_ahead`` (at least ``stage_ahead``): how far ahead runs handed over prepared are kept."""
        self.rng = rng
        self.stage_ahead = stage_ahead
        self.hold_ahead = max(stage_ahead, hold_ahead or stage_ahead)
        self.claim_ahead = min(claim_ahead, stage_ahead)
        self.prepare = prepare
        # The staged runs, by id and by due time (a bucket per distinct dispatch_after, the times sorted): every
        # step asks for the runs due within some horizon, and a walk over all of them (ten thousand in a
        # burst) several times a step was most of the loop thread's time when the burst came due.
        self._staged: dict[str, Staged] = {}
        self._buckets: dict[datetime, dict[str, Staged]] = {}
        self._times: list[datetime] = []
        self._claimed: set[str] = set()
        self._held: dict[str, Staged] = {}  # prepared, due beyond stage_ahead (see HOLD_LIMIT)
        self._held_order: list[tuple[datetime, str]] = []  # heap of (due, id) over _held
        self._next_scan: datetime | None = None  # when scan() next searches the database

    def __contains__(self, execution_id: str) -> bool:
        return execution_id in self._staged or execution_id in self._held

    def _put(self, item: Staged) -> None:
        pk = item.execution.pk
        item.due, item.order = item.execution.dispatch_after, dispatch_order(item)
        self._staged[pk] = item
        bucket = self._buckets.get(item.due)
        if bucket is None:
            bucket = self._buckets[item.due] = {}
            bisect.insort(self._times, item.due)
        bucket[pk] = item
        if item.claimed:
            self._claimed.add(pk)

    def _remove(self, item: Staged) -> None:
        pk = item.execution.pk
        del self._staged[pk]
        self._claimed.discard(pk)
        bucket = self._buckets[item.due]
        del bucket[pk]
        if not bucket:
            del self._buckets[item.due]
            del self._times[bisect.bisect_left(self._times, item.due)]

    def _within(self, horizon: datetime) -> list[Staged]:
        """The staged runs due at or before ``horizon``."""
        items: list[Staged] = []
        for due in self._times:
            if due > horizon:
                break
            items.extend(self._buckets[due].values())
        return items

    def claimed_ids(self) -> set[str]:
        """Runs claimed ahead and not sent yet: running in the database, unknown to any executor."""
        return set(self._claimed)

    def next_due(self) -> datetime | None:
        """When the loop must wake next for a staged execution: to claim it ahead, or to POST it."""
        best = None
        earliest = max(self.claim_ahead, CHECK_AHEAD)  # no run wakes earlier than this before its due time
        for due in self._times:
            if best is not None and due - earliest >= best:
                break
            for item in self._buckets[due].values():
                wake = self._wake_at(item)
                if best is None or wake < best:
                    best = wake
                    if wake <= due - earliest:
                        break
        return best

    def _wake_at(self, item: Staged) -> datetime:
        if item.needs_check():
            return item.execution.dispatch_after - CHECK_AHEAD
        if item.claimed or not item.ranking.executors:
            return item.execution.dispatch_after
        return item.execution.dispatch_after - self.claim_ahead

    def forget(self) -> list[str]:
        """Drop everything (leadership lost); returns the runs that were claimed ahead and never sent."""
        unsent = sorted(self.claimed_ids())
        self._staged.clear()
        self._buckets.clear()
        self._times.clear()
        self._claimed.clear()
        self._held.clear()
        self._held_order.clear()
        self._next_scan = None
        return unsent

    def promote(self, now: datetime) -> None:
        """Stage the held runs that have come within ``stage_ahead`` (loop thread, each step)."""
        horizon = now + self.stage_ahead
        while self._held_order and self._held_order[0][0] <= horizon and len(self._staged) < STAGE_LIMIT:
            _, pk = heapq.heappop(self._held_order)
            item = self._held.pop(pk, None)
            if item is not None and pk not in self._staged:
                self._put(item)

    def any_due(self, now: datetime) -> bool:
        return bool(self._times) and self._times[0] <= now

    def take_due(self, now: datetime, room: int) -> list[Staged]:
        """The staged executions due at ``now``, at most ``room``, in dispatch order (no longer staged)."""
        due = sorted(self._within(now), key=attrgetter("order"))[:max(0, room)]
        for item in due:
            self._remove(item)
        return due

    def soon_to_claim(self, now: datetime, room: int) -> list[Staged]:
        """Staged runs due within ``claim_ahead`` and not claimed yet, at most ``room`` of them."""
        if self.claim_ahead <= timedelta(0):
            return []
        room -= len(self._claimed)
        if room <= 0:
            return []
        return sorted((item for item in self._within(now + self.claim_ahead)
                       if not item.claimed and item.ranking.executors), key=attrgetter("order"))[:room]

    def claimed(self, items: list[Staged], ids: set[str], now: datetime) -> None:
        """Record which of ``items`` the claim won; the others were cancelled or stopped since staged."""
        for item in items:
            if item.execution.pk in ids:
                item.claimed, item.checked_at = True, now
                self._claimed.add(item.execution.pk)
            else:
                self._remove(item)

    def soon_to_check(self, now: datetime) -> list[Staged]:
        """Runs claimed ahead, due within CHECK_AHEAD, that must be read again before their POSTs leave."""
        return [item for item in self._within(now + CHECK_AHEAD) if item.needs_check()]

    def checked(self, items: list[Staged], still: set[tuple[str, int]], now: datetime) -> None:
        """Record the check of ``items``: the ones no longer claimed as their planned attempt (``still``
        holds (id, attempt) of those that are) are dropped, never sent."""
        for item in items:
            if (item.execution.pk, item.attempt) in still:
                item.checked_at = now
            else:
                self._remove(item)

    def scan(self, now: datetime) -> None:
        """Search the database for pending executions due within ``stage_ahead`` that are not staged yet
        (retries, runs another leader fired), at most every STAGE_SCAN_SECONDS."""
        if self.stage_ahead <= timedelta(0) or (self._next_scan is not None and now < self._next_scan):
            return
        self._next_scan = now + timedelta(seconds=STAGE_SCAN_SECONDS)
        upcoming = (TaskExecution.objects
                    .filter(status=ExecutionStatus.PENDING, dispatch_after__gt=now,
                            dispatch_after__lte=now + self.stage_ahead)
                    .exclude(task__execution_mode__in=ONE_AT_A_TIME).exclude(trigger_type=TriggerType.BACKFILL)
                    .exclude(task__load_balance_strategy=LoadBalanceStrategy.BROADCAST)
                    .order_by("dispatch_after", "id").values_list("pk", flat=True)[:STAGE_LIMIT])
        new = [pk for pk in upcoming if pk not in self][:self._room()]
        if new:
            self._stage_rows(list(TaskExecution.objects.filter(pk__in=new).select_related("task")), now)

    def stage(self, written: list[TaskExecution], now: datetime) -> None:
        """Stage the runs this leader has just fired ahead (they carry their task): no reading them back."""
        self.add(self.prepared(written, now), now)

    def prepared(self, written: list[TaskExecution], now: datetime) -> list[Staged]:
        """The runs of ``written`` to stage, ranked and planned, not staged yet: the firing thread prepares what
        it fired (ranking reads the database, signing costs CPU) so that the loop thread only adds them."""
        if self.stage_ahead <= timedelta(0):
            return []
        upcoming = [execution for execution in written
                    if execution.status == ExecutionStatus.PENDING and execution.pk not in self
                    and now < execution.dispatch_after <= now + self.hold_ahead
                    and not decided_when_due(execution)]
        room = self._room() + max(0, HOLD_LIMIT - len(self._held))
        return self._ranked(upcoming[:room], now)

    def add(self, items: list[Staged], now: datetime) -> None:
        """Stage prepared runs (loop thread), or hold those due beyond ``stage_ahead`` until ``promote``; one
        the scan staged meanwhile is kept as it is."""
        horizon = now + self.stage_ahead
        for item in items:
            pk, due = item.execution.pk, item.execution.dispatch_after
            if pk in self:
                continue
            if due <= horizon and len(self._staged) < STAGE_LIMIT:
                self._put(item)
            elif len(self._held) < HOLD_LIMIT:
                self._held[pk] = item
                heapq.heappush(self._held_order, (due, pk))

    def _room(self) -> int:
        return max(0, STAGE_LIMIT - len(self._staged))

    def _stage_rows(self, executions: list[TaskExecution], now: datetime) -> None:
        self.add(self._ranked(executions, now), now)

    def _ranked(self, executions: list[TaskExecution], now: datetime) -> list[Staged]:
        if not executions:
            return []
        rankings = Rankings([execution.task for execution in executions], self.rng)
        checked: dict = {}  # each executor's address is checked once for the whole stage
        items = []
        for execution in executions:
            item = Staged.of(execution, rankings.rank(execution.task))
            self._plan(item, checked)
            items.append(item)
        rankings.save(now)
        return items

    def _plan(self, item: Staged, checked: dict) -> None:
        """Plan the attempt (accept-by counted from the due time) and sign its first POST now rather than when
        it is due (the signature stays fresh for minutes). Without an executor, or when the address guard
        refuses, nothing is prepared (decided again when due, on the usual path)."""
        if not item.ranking.executors:
            return
        accept_by = accept_by_for(item.execution.dispatch_after, tunable("DISPATCH_TIMEOUT_SECONDS"))
        try:
            item.plan(accept_by, self.prepare(item.execution, item.ranking.executors[0], attempt=item.attempt,
                                              accept_by=accept_by, checked=checked))
        except RefusedURL:
            item.plan(None)
