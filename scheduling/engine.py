"""One scheduler node: registers itself, heartbeats, competes for leadership, and while leading runs
the steps of a tick, while its firing thread (``scheduling.fire_thread``) fires. Every step takes ``now``;
the loop and the firing thread are the only callers of the clock, which is this node's clock corrected to
the database server's (scheduling.clock_sync)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Max

from alerts.delivery import AlertDelivery
from alerts.outbox import record_leaderless
from alerts.retention import purge_alert_history
from core.clock_offset import ClockOffset, describe, too_far
from executions.retention import purge_expired, retention_cutoff
from executions.services import Replacement, stop_replaced
from executors.channel import purge_old_nonces
from scheduler_project.config import tunable
from scheduling.clock_sync import measured
from scheduling.database_wait import until_database_answers
from scheduling.dispatch import Dispatcher
from scheduling.fire_thread import FireThread
from scheduling.firing import fire_due
from scheduling.health import HealthChecker
from scheduling.housekeeping import PeriodicPurge
from scheduling.leader import Deposed, Fence, LeaderLock
from scheduling.metrics import observe_tick, set_leader
from scheduling.models import SchedulerInstance
from scheduling.staging import STAGE_AHEAD
from scheduling.workflow_firing import fire_due_workflows
from workflows.services import purge_runs

logger = logging.getLogger(__name__)

# Within a tick, a leader re-confirms its lock before a step when this long has passed since it last did
# (a SIGSTOP or a long stall mid-tick). Below the smallest lock idle timeout (2 s), so a lock confirmed more
# recently than this cannot have been freed by the server's idle timeout.
FENCE_RECHECK_SECONDS = 1.0
HISTORY_PURGE_INTERVAL = timedelta(days=1)
NONCE_PURGE_INTERVAL = timedelta(minutes=1)
# The shortest sleep before a staged run's due time: when the due runs wait for a free worker, the loop
# polls at this pace instead of spinning.
MIN_WAKE_SECONDS = 0.005
# On shutdown, how long the loop waits for the firing thread to finish its round (its chunk's transaction)
# before giving the lock up; a round held up longer is fenced off by the next leader's term.
FIRING_STOP_SECONDS = 10.0


class SchedulerNode:
    def __init__(
        self, *, instance_id: str, host: str, port: int | None, lock: LeaderLock,
        clock: Callable[[], datetime] | None = None, dispatcher: Dispatcher | None = None,
    ) -> None:
        """``clock``: by default this node's clock corrected to the database's (measured at each election
        attempt and heartbeat); a plain callable (tests) is taken as the database's time."""
        self.instance_id = instance_id
        self.host = host
        self.port = port
        self.lock = lock
        self.fence = Fence(lock.name)
        self.clock = clock = measured(clock)
        self.fire_ahead = timedelta(seconds=tunable("FIRE_AHEAD_SECONDS"))
        self.dispatcher = dispatcher or Dispatcher(
            clock=clock, workers=tunable("DISPATCH_WORKERS"), stage_ahead=min(self.fire_ahead, STAGE_AHEAD),
            hold_ahead=self.fire_ahead,
            claim_ahead=timedelta(seconds=tunable("CLAIM_AHEAD_SECONDS")),
        )
        self.dispatcher.fence = self.fence
        self.health = HealthChecker(clock=clock, pool=self.dispatcher.pool)
        self.is_leader = False
        self.clock_offset: ClockOffset | None = None
        self.refusal = ""  # why this node refuses to lead ("" when it may)
        self._next_heartbeat: datetime | None = None
        self._next_election: datetime | None = None
        self._confirmed_at = 0.0  # time.monotonic() of the last check that the lock is ours
        self.purges = (PeriodicPurge("executions past retention", HISTORY_PURGE_INTERVAL, purge_expired_at),
                       PeriodicPurge("executor nonces", NONCE_PURGE_INTERVAL, purge_old_nonces),
                       PeriodicPurge("workflow runs past retention", HISTORY_PURGE_INTERVAL, purge_workflow_runs_at),
                       PeriodicPurge("alert events, notifications and incidents", HISTORY_PURGE_INTERVAL,
                                     purge_alert_history))
        self._progress_at = time.monotonic()  # when the loop last began a step (read by the keep-alive)
        self.alerts = AlertDelivery(clock=clock, heartbeats=node_heartbeats, fenced=self.fence.atomic)
        self.alert_job = PeriodicPurge("alert events and notifications",
                                       timedelta(seconds=tunable("ALERT_INTERVAL_SECONDS")),
                                       self._alert_pass, verb="handled")
        # run() fires on a thread of its own (scheduling.fire_thread); without it (a single tick, tests) the
        # tick fires.
        self.firing: FireThread | None = None
        self._wake = threading.Event()  # set when the loop thread has work before its idle wait ends

    # --- membership -------------------------------------------------------------------------------

    def register(self, now: datetime) -> None:
        SchedulerInstance.objects.update_or_create(
            instance_id=self.instance_id,
            defaults={"host": self.host, "port": self.port, "is_leader": False, "updated_at": now},
        )
        self._next_heartbeat = now + timedelta(seconds=tunable("HEARTBEAT_INTERVAL_SECONDS"))

    def heartbeat(self, now: datetime) -> bool:
        """Step: touch this node's row every HEARTBEAT_INTERVAL_SECONDS (the cluster's liveness signal)."""
        if self._next_heartbeat is not None and now < self._next_heartbeat:
            return False
        self._next_heartbeat = now + timedelta(seconds=tunable("HEARTBEAT_INTERVAL_SECONDS"))
        if self.check_clock() and self.is_leader:
            self.step_down(now, self.refusal)
        touched = SchedulerInstance.objects.filter(instance_id=self.instance_id).update(
            updated_at=now, is_leader=self.is_leader, **self._clock_fields()
        )
        if not touched:  # the row was deleted (e.g. by an operator): come back
            self.register(now)
        return True

    # --- the clock --------------------------------------------------------------------------------

    def check_clock(self) -> str:
        """Measures this node's offset from the database's clock (the clock uses it from now on) and
        returns why the node may not lead: its offset is beyond SCHEDULER_MAX_CLOCK_OFFSET ('' if not).
        When that changes it is logged, and the heartbeat row shows it at once."""
        self.clock_offset = offset = self.clock.measure()
        limit = tunable("MAX_CLOCK_OFFSET_SECONDS")
        refusal = ""
        if offset is not None and too_far(offset, limit):
            refusal = f"its clock is {describe(offset)}, beyond SCHEDULER_MAX_CLOCK_OFFSET ({limit:g} s)"
        if bool(refusal) != bool(self.refusal):
            self._next_heartbeat = None  # show it on the heartbeat row in this very tick
            if refusal:
                logger.error("scheduler %s refuses to lead: %s", self.instance_id, refusal)
            else:
                logger.warning("scheduler %s may lead again: its clock is %s", self.instance_id, describe(offset))
        self.refusal = refusal
        return refusal

    def _clock_fields(self) -> dict:
        """What the heartbeat row shows of the clock check."""
        offset = self.clock_offset
        return {"clock_offset_seconds": None if offset is None else round(offset.seconds, 6),
                "leadership_refusal": self.refusal[:255]}

    # --- leadership -------------------------------------------------------------------------------

    def hold_leadership(self, now: datetime) -> bool:
        """Step: the fencing check. A leader confirms it still holds the lock before any write; a
        follower tries to take it every ELECTION_RETRY_SECONDS. Returns whether this node leads."""
        if self.is_leader:
            if self._confirm_lock():
                return True
            self.step_down(now, "lost the leader lock")
            return False
        asked_at = time.monotonic()  # read before asking: the answer holds from then on, not from its arrival
        if self._next_election is not None and now < self._next_election:
            return False
        self._next_election = now + timedelta(seconds=tunable("ELECTION_RETRY_SECONDS"))
        if self.check_clock():
            return False
        if self.lock.try_acquire():
            self._confirmed_at = asked_at
            try:
                self._become_leader(self.clock())  # the offset was just measured again
            except DatabaseError:  # no term, no leadership: let another node (or the next attempt) try
                self.lock.release()
                raise
        return self.is_leader

    def _confirm_lock(self) -> bool:
        """Asks the lock whether it is still ours; a yes holds from when it was asked, not from its arrival."""
        asked_at = time.monotonic()
        if not self.lock.still_held():
            return False
        self._confirmed_at = asked_at
        return True

    def _confirmed_recently(self) -> bool:
        return time.monotonic() - self._confirmed_at < FENCE_RECHECK_SECONDS

    def _lock_confirmed(self) -> bool:
        """For the firing thread, between its chunks: whether the lock is still ours, asked again when it was
        last confirmed FENCE_RECHECK_SECONDS ago. A lost lock is acted on by the loop thread, not here."""
        return self._confirmed_recently() or self._confirm_lock()

    def _leading_term(self) -> int | None:
        return self.fence.term if self.is_leader else None

    def _still_leading(self, now: datetime) -> bool:
        """Fencing between the steps of a tick: if the tick stalled (the process was frozen or starved)
        for FENCE_RECHECK_SECONDS since the lock was last confirmed, confirm it again before writing."""
        self._progress_at = time.monotonic()
        return self._confirmed_recently() or self.hold_leadership(now)

    def _become_leader(self, now: datetime) -> None:
        """A new term: its number is incremented under the lock, in the transaction that flags this node.
        The increment waits for the transactions a deposed leader still has open (leader.Fence)."""
        with transaction.atomic():
            term = self.fence.begin(self.instance_id, now)
            self._report_leaderless(now)
            SchedulerInstance.objects.exclude(instance_id=self.instance_id).update(is_leader=False)
            SchedulerInstance.objects.filter(instance_id=self.instance_id).update(
                is_leader=True, leader_since=now, updated_at=now, leader_term=term, **self._clock_fields()
            )
        self.is_leader = True
        set_leader(True)
        if self.firing is not None:
            self.firing.nudge()
        logger.info("scheduler %s is now the leader (lock %s, term %s)", self.instance_id, self.lock.name, term)

    def _report_leaderless(self, now: datetime) -> None:
        """Taking over after a gap: the last sign of another leader is its row's last touch (its last
        heartbeat, or its stepping down). The alert rule decides whether the gap was long enough to tell."""
        last_seen = (SchedulerInstance.objects.exclude(instance_id=self.instance_id)
                     .filter(leader_since__isnull=False).aggregate(last=Max("updated_at"))["last"])
        if last_seen is not None and now > last_seen:
            record_leaderless(since=last_seen, now=now, node=self.instance_id)

    def step_down(self, now: datetime, reason: str) -> None:
        was_leader = self.is_leader
        self.is_leader = False
        self.fence.end()
        self.dispatcher.forget_staged()
        set_leader(False)
        self.lock.release()
        try:
            SchedulerInstance.objects.filter(instance_id=self.instance_id).update(is_leader=False, updated_at=now)
        except DatabaseError as exc:
            logger.warning("scheduler %s: could not record stepping down: %s", self.instance_id, exc)
        if was_leader:
            logger.warning("scheduler %s stepped down: %s", self.instance_id, reason)

    # --- the tick ---------------------------------------------------------------------------------

    def tick(self, now: datetime) -> bool:
        """One pass. Returns True if it found work (the loop then goes again without waiting)."""
        started = time.monotonic()
        try:
            return self._tick(now)
        except Deposed as exc:  # a write was refused: another node leads now
            self.step_down(now, f"fenced off: {exc}")
            return False
        finally:
            observe_tick(time.monotonic() - started)

    def keep_lock_alive(self, stop: threading.Event) -> None:
        """Thread: a step can outlast the lock session's idle timeout (a burst of fires on a slow database);
        touching the session every ``keepalive_seconds`` while the loop makes progress keeps the server from
        closing it mid-step. A frozen process freezes this thread too, so SIGSTOP still frees the lock. A
        lost lock is not acted on here: the loop's next fencing check sees it and steps down."""
        while not stop.wait(self.lock.keepalive_seconds):
            if self.is_leader and time.monotonic() - self._progress_at < tunable("STALL_LIMIT_SECONDS"):
                self.lock.still_held()

    def _tick(self, now: datetime) -> bool:
        self._progress_at = time.monotonic()
        # The fencing check comes first, the heartbeat second: a leader resumed after a freeze must learn
        # that it lost the lock before its heartbeat writes its (stale) is_leader=True back to its row.
        self.hold_leadership(now)
        self.heartbeat(now)  # which also steps a leader down whose clock has gone too far off
        if not self.is_leader:
            return False
        work = 0
        fire_workflows = functools.partial(fire_due_workflows, still_leading=lambda: self._still_leading(now),
                                           fence=self.fence)
        steps: list[Callable[[datetime], int]] = [self.dispatcher.dispatch_pending]
        if self.firing is None:
            # Dispatch before firing: staged runs due now leave first; runs fired now are dispatched next tick,
            # which follows at once (a step that did work makes the loop go again without waiting).
            steps.append(functools.partial(self.fire, still_leading=lambda: self._still_leading(now),
                                           on_written=lambda rows: self.dispatcher.stage(rows, now)))
        else:
            self.dispatcher.add_staged(self.firing.take_written(self.fence.term), now)
        for step in (*steps, fire_workflows, self.dispatcher.sweep_timeouts, self.dispatcher.sweep_leases):
            if not self._still_leading(now):
                return False
            work += step(now)
        if self._still_leading(now):
            self.health.check_health(now)
            self.purge_history(now)
            self.deliver_alerts(now)
        return work > 0

    def fire_thread(self, idle_seconds: float) -> FireThread:
        """The thread ``run()`` fires on (not started). What it fires ahead it also ranks and signs (staging's
        first half), so the loop thread, whose pace is the POSTs', only adds it to the staged runs."""
        def fire_and_prepare(now: datetime, *, still_leading: Callable[[], bool],
                             on_written: Callable[[list], None]) -> int:
            return self.fire(now, still_leading=still_leading,
                             on_written=lambda rows: on_written(self.dispatcher.prepare_staged(rows, now)))

        return FireThread(fire=fire_and_prepare, term=self._leading_term, confirmed=self._lock_confirmed,
                          clock=self.clock, idle_seconds=idle_seconds, wake=self._wake.set)

    def fire(self, now: datetime, *, still_leading: Callable[[], bool],
             on_written: Callable[[list], None]) -> int:
        """The firing step, fenced by this node's term; on the firing thread, or in the tick without one."""
        return fire_due(now, still_leading=still_leading, fence=self.fence, ahead=self.fire_ahead,
                        on_written=on_written, on_replaced=self._stop_replaced_soon)

    def _stop_replaced_soon(self, replacements: list[Replacement]) -> None:
        """Replace mode: the stops are HTTP requests, so they go to the workers, never the loop thread. (The
        fire decided and cancelled, fenced; what follows only tells executors and lets the new run go no
        later than its hold, which expires by itself: nothing a deposed leader could get wrong.)"""
        for replacement in replacements:
            self.dispatcher.pool.submit(self._stop_replaced, replacement)

    def _stop_replaced(self, replacement: Replacement) -> None:
        try:
            close_old_connections()
            stop_replaced(replacement, clock=self.clock)
        except Exception:
            logger.exception("stopping the runs replaced by task %s's fire failed (the new run waits out its "
                             "hold)", replacement.task_id)

    def idle_seconds(self, now: datetime, idle: float) -> float:
        """How long the loop may sleep after a tick without work: the idle tick, cut short when a staged
        execution falls due sooner (it is POSTed on time, not up to a tick late)."""
        due = self.dispatcher.next_due() if self.is_leader else None
        if due is None:
            return idle
        return min(idle, max(MIN_WAKE_SECONDS, (due - now).total_seconds()))

    def purge_history(self, now: datetime) -> bool:
        """Step: the leader's periodic deletions (``scheduling.housekeeping``), each started when due on a
        worker thread. Returns whether one was started."""
        started = [purge.start_if_due(now, self.dispatcher.pool) for purge in self.purges]
        return any(started)

    def deliver_alerts(self, now: datetime) -> bool:
        """Step: the alert work (``alerts.delivery``: node heartbeats, outbox events, sends), every
        ALERT_INTERVAL_SECONDS on a worker thread, never two passes at once. Returns whether one started."""
        return self.alert_job.start_if_due(now, self.dispatcher.pool)

    def _alert_pass(self, now: datetime) -> int:
        """One ``AlertDelivery.run_once`` on a worker thread. Deposed meanwhile: the pass ends there (its node
        check refused), the loop's next fenced write steps down, and the new leader's pass goes on."""
        try:
            return self.alerts.run_once(now)
        except Deposed as exc:
            logger.warning("scheduler %s: alert pass stopped, %s", self.instance_id, exc)
            return 0

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; then release the lock, mark not leader, finish in-flight dispatches.
        Started while the database is down, it waits for it (registering is its first query)."""
        if not until_database_answers(lambda: self.register(self.clock()), stop=stop,
                                      what=f"scheduler {self.instance_id}"):
            return
        idle = tunable("TICK_SECONDS")
        keepalive_stop = threading.Event()
        if self.lock.keepalive_seconds:
            threading.Thread(target=self.keep_lock_alive, args=(keepalive_stop,), name="leader-keepalive",
                             daemon=True).start()
        threading.Thread(target=lambda: (stop.wait(), self._wake.set()), name="stop-wake", daemon=True).start()
        self.firing = self.fire_thread(idle)
        self.firing.start()
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    busy = self.tick(self.clock())
                except DatabaseError as exc:
                    # The database (or our connection to it) failed: don't crash; re-check the lock next tick.
                    logger.error("scheduler %s: tick failed: %s", self.instance_id, exc)
                    busy = False
                    stop.wait(1.0)
                if not busy:
                    self._wake.wait(self.idle_seconds(self.clock(), idle))
                self._wake.clear()
        finally:  # also when a tick raised something unexpected: never exit still holding the lock
            keepalive_stop.set()
            self.firing.stop(timeout=FIRING_STOP_SECONDS)
            self.shutdown()

    def shutdown(self) -> None:
        """Give up the lock first, so a follower takes over at once, then let in-flight dispatches and
        health checks finish (up to their HTTP timeouts against a hung executor). A dispatch claims its
        execution by compare-and-set before it POSTs, so the new leader cannot dispatch it a second time."""
        self.step_down(self.clock(), "shutting down")
        self.dispatcher.shutdown(wait=True)
        logger.info("scheduler %s stopped", self.instance_id)


def node_heartbeats() -> list[tuple[str, datetime]]:
    return list(SchedulerInstance.objects.values_list("instance_id", "updated_at"))


def purge_expired_at(now: datetime) -> int:
    return purge_expired(now=now)


def purge_workflow_runs_at(now: datetime) -> int:
    """Workflow runs go with the execution history's retention (none when it is off)."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0
    return purge_runs(older_than=cutoff, batch_size=settings.EXECUTION_PURGE_BATCH_SIZE)
