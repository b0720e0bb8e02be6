"""The chaos suite: a real cluster under a seeded storm of failures, then an audit of the database.

Three ``runscheduler`` nodes on one MariaDB/MySQL (or PostgreSQL) database, reached through a proxy of the
run's own (tests/tcp_proxy.py), one web server (callbacks), three chaos executors
(tests/chaos/chaos_executor.py) and 200 tasks with second-level crons across the three execution modes and
misfire policies, whose handlers succeed, fail, hang past their timeout, lose results or send them twice.
While they run, at random intervals from a seeded RNG and each kind in turn (see KINDS): the leader is
SIGKILLed (a fresh node replaces it) or SIGSTOPped for a while, the database is killed or frozen for a while
(its proxy: the server is shared), the web server is killed for a while, or a node whose clock is 30 s ahead
(libfaketime) joins for a while, or an executor is SIGKILLed (restarted at once under its instance id)
or SIGSTOPped for a while. Stuck executions are looked for every second meanwhile. Then the tasks are
paused once firing has caught up, the cluster settles, every node is stopped and :func:`audit` checks what
the database (and the executors' journals and the web server's access log) recorded:

1. no fire has two first attempts: no (task, scheduled_time) with two attempt-0 rows, and no executor ran
   the first attempt of one fire twice; no execution started on two executors (their journals);
2. every fire time of every task between its first fire and the pause (an instant the harness picks, then
   waits for firing to get past before pausing: not the task's ``next_run_time``, which the system under test
   writes) has an execution row, or is a time the ``fire_once`` policy folded into a later run, counted in
   that run's ``misfire:`` note;
3. no execution is still pending or running past its timeout + grace;
4. no result was applied twice (counted from the executors' callback outcomes and, independently, from the
   200 answers in the web server's log);
5. the runs of each sequential task never overlapped (start/end intervals in the database);
6. each fire's attempts stop exactly at its task's max_retry: none beyond it, none owed and missing;
7. a fan-out/fan-in workflow firing every few seconds alongside: every run reached a final state, each node
   ran at most once per attempt (no two rows with one node key and attempt, no execution started twice), no
   (workflow, scheduled time) has two runs, and a run's status agrees with its nodes;
8. nothing was stuck during the storm (overdue by STUCK_AFTER_SECONDS), no node 30 s ahead led, and no gap
   in the dispatches executors received was longer than the longest disruption plus a failover. Recovery is
   reported from each signal (SIGSTOP, not SIGCONT) to a live leader and to the next dispatch received.

Used by tests/chaos/test_chaos.py (2 minutes, in the normal suite on MariaDB) and bench/chaos.py (on demand).
"""

from __future__ import annotations

import bisect
import contextlib
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.processes import (
    FAST_TUNABLES,
    LIBFAKETIME,
    Cluster,
    ExecutorProcess,
    Processes,
    ProxyProcess,
    SchedulerProcess,
    WaitTimeout,
    clock_ahead,
    database_url,
    slug,
    wait_for,
)

NODES = ("s1", "s2", "s3")
EXECUTORS = ("chaos-a", "chaos-b", "chaos-c")
TASK_COUNT = 200
PERIODS = (5, 6, 8, 10, 12, 15, 20, 30)  # seconds between fires: ~20 fires/s over 200 tasks on average
MISFIRE_THRESHOLD_SECONDS = 1.5  # low, so a frozen leader's backlog really goes through the misfire policy
# On top of tests/processes.py's FAST_TUNABLES (lock idle timeout 5 s, grace 0.5 s, backoff 0.2 s).
CHAOS_TUNABLES = {"SCHEDULER_MISFIRE_THRESHOLD": str(MISFIRE_THRESHOLD_SECONDS)}
MISFIRE_NOTE = re.compile(r"misfire: (\d+)( or more)? fire time")
FOLDED_BY_FIRE_ONCE = "missed (fire_once, counted in a later run's misfire note)"
FIRED_AHEAD_FOLDED = "skipped (fire_once, created ahead and never sent)"
RETRY_WITHDRAWN = "reported its result late, in time"  # executions.services, on a retry it cancels
NEVER_SENT = "never sent"  # scheduling.dispatch's note on a run fired ahead that no leader sent in time
# The reasons policy.decide_fire gives for a fire its execution mode skips.
MODE_SKIP_REASONS = ("skip mode:", "sequential mode:", "max_instances (")
CALLBACK_LINE = re.compile(r'"POST /api/v1/executions/([^/\s]+)/callback[^"]*" (\d{3})')

# What a task's runs do: (name prefix = handler, parameters, timeout_seconds), with a weight.
BEHAVIOURS: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "ok": ("echo", {}, 3, 30),
    "fails": ("fail", {}, 3, 10),
    "flaky": ("flaky", {"fail_fraction": 0.5}, 3, 15),
    "slow": ("sleep", {"seconds": 1.0}, 3, 10),
    "hangs": ("sleep", {"seconds": 6.0, "ignore_timeout": True}, 2, 10),  # only the timeout sweep ends it
    "loses-results": ("echo", {"drop_callback_fraction": 0.5}, 2, 10),
    "repeats-results": ("echo", {"double_callback_fraction": 0.5}, 3, 15),
}
MODES = ("parallel", "sequential", "skip")
POLICIES = ("fire_once", "fire_all", "skip")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    cron: str
    behaviour: str
    execution_mode: str
    misfire_policy: str
    max_retry: int
    timeout_seconds: int
    parameters: dict[str, Any]
    max_instances: int | None = None


def workload(rng: random.Random, count: int = TASK_COUNT) -> list[TaskSpec]:
    """``count`` tasks covering every mode x misfire policy x behaviour, with random periods and phases."""
    names = list(BEHAVIOURS)
    weights = [BEHAVIOURS[name][3] for name in names]
    specs = []
    for index in range(count):
        behaviour = rng.choices(names, weights)[0]
        handler, parameters, timeout, _ = BEHAVIOURS[behaviour]
        mode = MODES[index % 3]
        period = rng.choice(PERIODS)
        specs.append(TaskSpec(
            name=f"{handler}.chaos-{index:03d}-{behaviour}",
            cron=f"{rng.randrange(period)}/{period} * * * * *",
            behaviour=behaviour,
            execution_mode=mode,
            misfire_policy=POLICIES[(index // 3) % 3],
            max_retry=rng.choice((0, 1, 2)),
            timeout_seconds=timeout,
            parameters={**parameters, "double_callback_fraction": parameters.get("double_callback_fraction", 0.05)},
            max_instances=rng.choice((None, 1, 2)) if mode == "parallel" else None,
        ))
    return specs


# A fan-out/fan-in workflow under the same storm: node -> (behaviour, max_retry); "fix" handles b0's failure.
WORKFLOW_NODES = {"root": ("ok", 0), "b0": ("flaky", 1), "b1": ("slow", 0), "b2": ("loses-results", 0),
                  "b3": ("ok", 0), "join": ("ok", 0), "fix": ("ok", 0)}
WORKFLOW_EDGES = [("root", "b0", "on_success"), ("root", "b1", "on_success"), ("root", "b2", "on_success"),
                  ("root", "b3", "on_success"), *((f"b{i}", "join", "on_success") for i in range(4)),
                  ("b0", "fix", "on_failure")]
WORKFLOW_INTERVAL_SECONDS = 4


# --- the cluster -------------------------------------------------------------------------------------

def child_tunable(procs: Processes, variable: str, key: str) -> float:
    """A tunable as the children see it: their environment's value, else the default (this process's own
    settings, read from the same environment the children inherit)."""
    from django.conf import settings

    raw = procs.env.get(variable)
    return float(raw) if raw is not None else float(settings.SCHEDULER[key])


def use_defaults(procs: Processes) -> None:
    """Runs the cluster at the README's defaults: none of the fast tunables the tests use."""
    for variable in (*FAST_TUNABLES, *CHAOS_TUNABLES):
        procs.env.pop(variable, None)


def start_chaos_executor(procs: Processes, instance_id: str, *, max_workers: int = 64,
                         batch_callbacks: bool = True) -> ExecutorProcess:
    """A tests/chaos/chaos_executor.py process (Processes.start_executor runs the plain journal executor)."""
    assert procs.web is not None, "start the web server first: executors register with it"
    journal = procs.log_dir / f"journal-{slug(instance_id)}.jsonl"
    argv = [sys.executable, "-m", "tests.chaos.chaos_executor", "--scheduler", procs.web.url,
            "--instance-id", instance_id, "--journal", str(journal), "--max-workers", str(max_workers),
            *([] if batch_callbacks else ["--one-callback-per-request"])]
    child = ExecutorProcess(instance_id, argv, procs.env, procs.log_dir / f"executor-{slug(instance_id)}.log",
                            journal)
    procs.children.append(child)
    return child


def through_proxy(procs: Processes) -> ProxyProcess:
    """Points every child at the database through a proxy of its own (tests/tcp_proxy.py), which the storm
    kills or freezes instead of the database server, which other runs share."""
    from django.db import connection

    settings = connection.settings_dict
    default_port = 3306 if connection.vendor == "mysql" else 5432
    proxy = procs.start_proxy((settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or default_port)))
    procs.env["DATABASE_URL"] = database_url({**settings, "HOST": "127.0.0.1", "PORT": proxy.port})
    return proxy


def start_cluster(procs: Processes, timeout: float = 60) -> Cluster:
    """Web server, three nodes (one elected) and three registered chaos executors."""
    cluster = Cluster(procs).start(schedulers=NODES, executors=(), timeout=timeout)
    for position, instance_id in enumerate(EXECUTORS):  # the first reports one result per request
        cluster.executors[instance_id] = start_chaos_executor(procs, instance_id, batch_callbacks=position > 0)
    for instance_id, child in cluster.executors.items():
        cluster.executor_ids[instance_id] = procs.wait_until(
            lambda i=instance_id: cluster.executor_pk(i), timeout, f"executor {instance_id} to register",
            watch=[child, procs.web], interval=0.1)
    return cluster


def create_tasks(cluster: Cluster, specs: list[TaskSpec], now: datetime) -> dict[str, datetime]:
    """Creates the tasks through the task services, assigned to every executor before they can fire (created
    with a cron that does not fire soon, then given their real one). Returns each task's first fire time."""
    from tasks.services import assignment_create, task_create, task_update
    from tests.processes import NEVER_SOON

    first_fire = {}
    ids = []
    for spec in specs:
        task = task_create(data={
            "name": spec.name, "cron_expression": NEVER_SOON, "execution_mode": spec.execution_mode,
            "misfire_policy": spec.misfire_policy, "max_retry": spec.max_retry,
            "timeout_seconds": spec.timeout_seconds, "parameters": spec.parameters,
            "max_instances": spec.max_instances,
        }, now=now)
        for executor_id in cluster.executor_ids.values():
            assignment_create(task_id=task.pk, executor_id=executor_id)
        ids.append(task.pk)
    for task_id, spec in zip(ids, specs, strict=True):
        task = task_update(task_id=task_id, data={"cron_expression": spec.cron}, now=datetime.now(UTC))
        first_fire[task_id] = task.next_run_time
    return first_fire


def create_workflow(cluster: Cluster, now: datetime) -> str:
    """The workflow of WORKFLOW_NODES, each node a task of its own assigned to every executor, firing every
    WORKFLOW_INTERVAL_SECONDS with parallel overlap. Returns its id."""
    from tasks.services import assignment_create, task_create
    from tests.processes import NEVER_SOON
    from workflows.services import workflow_create

    nodes = []
    for name, (behaviour, max_retry) in WORKFLOW_NODES.items():
        handler, parameters, timeout, _ = BEHAVIOURS[behaviour]
        task = task_create(data={"name": f"{handler}.chaos-wf-{name}-{behaviour}", "cron_expression": NEVER_SOON,
                                 "max_retry": max_retry, "timeout_seconds": timeout, "parameters": parameters},
                           now=now)
        for executor_id in cluster.executor_ids.values():
            assignment_create(task_id=task.pk, executor_id=executor_id)
        nodes.append({"name": name, "task_id": task.pk})
    edges = [{"parent": p, "child": c, "condition": condition} for p, c, condition in WORKFLOW_EDGES]
    return workflow_create(data={"name": "chaos fan", "schedule_type": "interval",
                                 "interval_seconds": WORKFLOW_INTERVAL_SECONDS},
                           nodes=nodes, edges=edges, now=datetime.now(UTC)).pk


# --- disruptions -------------------------------------------------------------------------------------

LEADER_DISRUPTIONS = ("SIGKILL", "SIGSTOP")  # the ones that may change the leader


@dataclass
class Disruption:
    at: float  # seconds since the storm began
    kind: str  # one of KINDS
    node: str
    wall: float = 0.0  # time.time() of the signal (SIGSTOP for a freeze), to compare with executor journals
    frozen_for: float = 0.0
    new_leader: str = ""
    recovered_in: float = 0.0  # seconds from the signal (SIGSTOP, not SIGCONT, for a freeze) to a live leader
    to_dispatch: float | None = None  # seconds from the signal to the next dispatch an executor received

    def __str__(self) -> str:
        what = f"{self.kind:<9} {self.frozen_for:4.1f} s" if self.frozen_for else f"{self.kind:<16}"
        return (f"t={self.at:6.1f} s  {what} {self.node:>4} -> leader {self.new_leader:>4} "
                f"(a live leader {self.recovered_in:.2f} s after the signal)")


# An execution overdue this long during the storm is stuck: longer than any outage a disruption causes
# (the lock's idle timeout, or an idle transaction's, plus an election), so a working leader had time.
STUCK_AFTER_SECONDS = 20.0
# Firing may stop for as long as a disruption lasts (a database outage), plus the lock's idle timeout (a
# frozen leader keeps the lock until then) and an election; a longer gap means something else held it up.
GAP_MARGIN_SECONDS = 5.0


class StuckWatch:
    """Looks for stuck executions while the storm runs, every second: the end-of-run check comes after the
    cluster settled, which hides a run that was stuck for a minute and then freed. Running past its deadline
    + grace, or pending past its due time (sequential runs wait for their predecessor: not counted), by more
    than STUCK_AFTER_SECONDS."""

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace
        self.found: dict[str, str] = {}

    def check(self) -> None:
        from executions.models import TaskExecution

        late = datetime.now(UTC) - self.grace - timedelta(seconds=STUCK_AFTER_SECONDS)
        running = TaskExecution.objects.filter(status="running", deadline__lt=late)
        pending = (TaskExecution.objects.filter(status="pending", dispatch_after__lt=late)
                   .exclude(task__execution_mode="sequential"))
        for row in [*running, *pending]:
            self.found.setdefault(row.pk, f"{row.pk} ({row.status}, task {row.task_id} @ "
                                          f"{row.scheduled_time.isoformat()}, seen {datetime.now(UTC):%H:%M:%S})")


# What a disruption does: the leader SIGKILLed (a fresh node replaces it) or SIGSTOPped for a while; the
# database (the proxy every child reaches it through) killed — connections drop, new ones are refused — or
# frozen for a while; the web server killed for a while (then started again on its port); a node whose clock
# is 30 s ahead started for a while (it must never lead); an executor killed (and restarted at once) or
# frozen for a while.
KINDS = ("SIGKILL", "SIGSTOP", "DB-DOWN", "DB-FREEZE", "WEB-DOWN", "SKEW", "EXECUTOR-KILL", "EXECUTOR-FREEZE")


class Storm:
    """Disrupts the cluster at random intervals, each kind in turn (in an order shuffled for every round).
    Everything random comes from one seeded RNG."""

    def __init__(self, cluster: Cluster, rng: random.Random, *, gap: tuple[float, float],
                 freeze: tuple[float, float], db: ProxyProcess, say: Callable[[str], None] = print) -> None:
        self.cluster = cluster
        self.db = db
        self.kinds = [kind for kind in KINDS if kind != "SKEW" or LIBFAKETIME]
        self.actions = {"SIGKILL": self._sigkill, "SIGSTOP": self._sigstop, "DB-DOWN": self._db_down,
                        "DB-FREEZE": self._db_freeze, "WEB-DOWN": self._web_down, "SKEW": self._skew,
                        "EXECUTOR-KILL": self._executor_kill, "EXECUTOR-FREEZE": self._executor_freeze}
        self._round: list[str] = []
        self.skewed_led: list[str] = []
        self.watch = StuckWatch(timedelta(seconds=child_tunable(cluster.procs, "SCHEDULER_TIMEOUT_GRACE_SECONDS",
                                                                "TIMEOUT_GRACE_SECONDS")))
        self.rng = rng
        self.gap = gap
        self.freeze = freeze
        self.say = say
        self.serial = len(cluster.schedulers)
        self.disruptions: list[Disruption] = []

    def live_leader(self) -> SchedulerProcess | None:
        """The one node that is running, not frozen, and whose row says leader (None while that is unclear)."""
        nodes = [self.cluster.schedulers[i] for i in self.cluster.leaders()]
        live = [node for node in nodes if node.alive and not node.frozen]
        return live[0] if len(live) == 1 else None

    def wait_leader(self, timeout: float = 60) -> SchedulerProcess:
        return self.cluster.wait_until(self.live_leader, timeout, "one live leader", interval=0.02)

    def next_kind(self) -> str:
        if not self._round:
            self._round = list(self.kinds)
            self.rng.shuffle(self._round)
        return self._round.pop()

    def run(self, seconds: float) -> list[Disruption]:
        began = time.monotonic()
        while time.monotonic() - began + self.gap[0] < seconds:
            self.hold(self.rng.uniform(*self.gap))  # the random interval between disruptions, by design
            leader = self.wait_leader()
            kind = self.next_kind()
            event = Disruption(at=time.monotonic() - began, kind=kind, node=leader.instance_id, wall=time.time())
            if kind not in ("SIGKILL", "EXECUTOR-KILL"):  # the length of a freeze or an outage is the disruption
                event.frozen_for = self.rng.uniform(*self.freeze)
            signalled = time.monotonic()
            back_at = self.actions[kind](leader, event)
            event.new_leader = self.wait_leader().instance_id
            event.recovered_in = (back_at or time.monotonic()) - signalled
            self.disruptions.append(event)
            self.say(f"  #{len(self.disruptions):<3} {event}")
        return self.disruptions

    def hold(self, seconds: float, *, frozen: SchedulerProcess | None = None) -> float | None:
        """Sleeps ``seconds`` (a length the storm chose), looking for stuck runs every second; while
        ``frozen`` is the frozen leader, also for another live leader. Returns when one appeared."""
        end = time.monotonic() + seconds
        next_check, back_at = 0.0, None
        while (left := end - time.monotonic()) > 0:
            if time.monotonic() >= next_check:
                self.watch.check()
                next_check = time.monotonic() + 1.0
            if frozen is not None and back_at is None and self.live_leader() is not None:
                back_at = time.monotonic()
            time.sleep(min(0.1, left))
        return back_at

    def _executor_kill(self, leader: SchedulerProcess, event: Disruption) -> None:
        """An executor SIGKILLed and started again under its instance id (its outbox file keeps its results):
        what it held is lost and retried, and it must never start a run given to another meanwhile."""
        event.node = instance_id = self.rng.choice(sorted(self.cluster.executors))
        child = self.cluster.executors[instance_id]
        child.send(signal.SIGKILL)
        child.wait(10)
        self.cluster.executors[instance_id] = start_chaos_executor(self.cluster.procs, instance_id)

    def _executor_freeze(self, leader: SchedulerProcess, event: Disruption) -> None:
        """An executor frozen for a while: once thawed it must not start a run whose accept-by passed."""
        event.node = instance_id = self.rng.choice(sorted(self.cluster.executors))
        child = self.cluster.executors[instance_id]
        child.freeze()
        self.hold(event.frozen_for)
        child.thaw()

    def _sigkill(self, leader: SchedulerProcess, event: Disruption) -> None:
        leader.send(signal.SIGKILL)
        leader.wait(10)
        self.serial += 1
        replacement = f"s{self.serial}"
        self.cluster.schedulers[replacement] = self.cluster.procs.start_scheduler(replacement)

    def _sigstop(self, leader: SchedulerProcess, event: Disruption) -> float | None:
        leader.freeze()
        back_at = self.hold(event.frozen_for, frozen=leader)
        leader.thaw()
        return back_at

    def _db_down(self, leader: SchedulerProcess, event: Disruption) -> None:
        event.node = "db"
        self.db.send(signal.SIGKILL)
        self.db.wait(10)
        self.hold(event.frozen_for)
        self.db = self.cluster.procs.start_proxy(self.db.target, self.db.port)

    def _db_freeze(self, leader: SchedulerProcess, event: Disruption) -> None:
        event.node = "db"
        self.db.freeze()
        self.hold(event.frozen_for)
        self.db.thaw()

    def _web_down(self, leader: SchedulerProcess, event: Disruption) -> None:
        event.node = "web"
        procs = self.cluster.procs
        assert procs.web is not None
        procs.web.send(signal.SIGKILL)
        procs.web.wait(10)
        self.hold(event.frozen_for)
        procs.restart_web()
        procs.wait_web()

    def _skew(self, leader: SchedulerProcess, event: Disruption) -> None:
        self.serial += 1
        node = event.node = f"s{self.serial}-skewed"
        self.cluster.schedulers[node] = skewed = self.cluster.procs.start_scheduler(node, **clock_ahead(30))
        self.hold(event.frozen_for)
        skewed.send(signal.SIGKILL)
        skewed.wait(10)
        if "is now the leader" in skewed.log_text():
            self.skewed_led.append(f"{node} (clock 30 s ahead) led")


# --- settling ----------------------------------------------------------------------------------------

def pause_all(task_ids: list[str]) -> None:
    """Stops firing without touching ``next_run_time``: after this, a task's next_run_time is exactly how
    far firing got (the pause service clears it; firing's compare-and-set needs status 'active')."""
    from executions.services import retried_on_deadlock
    from tasks.models import Task
    from workflows.models import Workflow

    # A bulk UPDATE of the tasks' status meets the leader's firing on the same rows and index ranges: the
    # database may pick it as a deadlock victim (it did, once, in CI), and like any client it runs it again.
    retried_on_deadlock(Task.objects.filter(pk__in=task_ids).update)(status="paused")
    retried_on_deadlock(Workflow.objects.update)(status="paused")  # runs in progress go on to their end


def active_executions() -> int:
    from executions.models import TaskExecution

    return TaskExecution.objects.filter(status__in=("pending", "running")).count()


def executor_callbacks_pending(cluster: Cluster) -> int:
    """Results the executors still hold: queued for delivery and never settled (from their journals, which
    need no credentials, unlike the executors' signed /health). By execution: a restarted executor queues
    again what its outbox file kept."""
    queued: set[str] = set()
    settled: set[str] = set()
    for child in cluster.executors.values():
        for event in child.journal():
            if event["event"] == "callback_queued":
                queued.add(event["execution_id"])
            elif event["event"] == "callback" and event["outcome"] != "retry":
                settled.add(event["execution_id"])
    return len(queued - settled)


def caught_up_pause(task_ids: list[str], timeout: float) -> datetime:
    """Picks the pause instant (now), waits up to ``timeout`` s until firing has got past it (no task still
    due at it), then pauses. Every cron time up to the returned instant must be accounted for; one firing
    never reached shows up in the audit as unaccounted."""
    from tasks.models import Task

    paused_at = datetime.now(UTC)
    with contextlib.suppress(WaitTimeout):
        wait_for(lambda: not Task.objects.filter(pk__in=task_ids, status="active", next_run_time__lte=paused_at)
                 .exists(), timeout, interval=0.2, message="firing to reach the pause")
    pause_all(task_ids)
    return paused_at


def settle(cluster: Cluster, task_ids: list[str], timeout: float) -> tuple[datetime, float]:
    """Pauses the tasks once firing has caught up and gives the cluster up to ``timeout`` seconds to finish
    what is in flight (retries, timeouts, queued sequential runs, held results), then stops every node.
    Returns the pause instant and the settle time."""
    began = time.monotonic()
    for node in cluster.schedulers.values():
        if node.frozen:
            node.thaw()
    paused_at = caught_up_pause(task_ids, timeout=30)
    try:
        wait_for(lambda: active_executions() == 0 and executor_callbacks_pending(cluster) == 0, timeout,
                 interval=0.5, message="every execution to end")
    except WaitTimeout:
        pass  # audit() reports what did not end, with its ids
    for node in cluster.schedulers.values():
        node.send(signal.SIGTERM)
    for node in cluster.schedulers.values():
        node.wait(30)
    return paused_at, time.monotonic() - began


# --- the audit ---------------------------------------------------------------------------------------

@dataclass
class Audit:
    """What the database and the journals say after the storm. ``problems`` lists every broken invariant."""

    seed: int
    seconds: float
    disruptions: list[Disruption]
    fire_times: int = 0
    accounted: Counter = field(default_factory=Counter)
    unaccounted: list[str] = field(default_factory=list)
    policy_mismatches: list[str] = field(default_factory=list)
    rows_by_status: Counter = field(default_factory=Counter)
    retries: int = 0
    # Failed/timeout attempts with attempts left but no next attempt (finish() commits the final status and
    # the retry in one transaction, so a node killed mid-way must not lose one).
    lost_retries: list[str] = field(default_factory=list)
    extra_retries: list[str] = field(default_factory=list)  # attempts beyond max_retry, or after a success
    duplicate_rows: list[tuple] = field(default_factory=list)
    duplicate_runs: list[str] = field(default_factory=list)
    started_on_two: list[str] = field(default_factory=list)  # executions whose handler began on two executors
    # Work lost at the boundary: a handler's success, finished before its run's deadline, that the scheduler
    # refused although no retry had replaced the run (it must have applied it: late-result rule).
    refused_successes: list[str] = field(default_factory=list)
    # Successes refused because a retry had started meanwhile (the run was lost: its executor was killed or
    # frozen past its lease). The work is done twice; that is what a lease costs, so it is reported only.
    superseded_successes: list[str] = field(default_factory=list)
    lost_runs: int = 0  # attempts ended as lost (failed, "lost: ..."): their executor was gone
    callbacks: Counter = field(default_factory=Counter)
    web_callbacks: Counter = field(default_factory=Counter)  # HTTP status -> answers in the web server's log
    applied_twice_journal: list[str] = field(default_factory=list)
    applied_twice_web: list[str] = field(default_factory=list)
    dropped_results: Counter = field(default_factory=Counter)
    repeated_results: Counter = field(default_factory=Counter)
    non_terminal: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    sequential_overlaps: list[str] = field(default_factory=list)
    executor_overlaps: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0
    workflow_runs: Counter = field(default_factory=Counter)  # status -> runs
    unfinished_runs: list[str] = field(default_factory=list)
    duplicate_nodes: list[str] = field(default_factory=list)
    duplicate_workflow_runs: list[str] = field(default_factory=list)
    inconsistent_runs: list[str] = field(default_factory=list)
    stuck_during_storm: list[str] = field(default_factory=list)
    skewed_led: list[str] = field(default_factory=list)
    largest_dispatch_gap: float = 0.0  # seconds between two dispatches executors received, during the storm
    largest_gap_at: float = 0.0  # seconds into the storm where it began
    gap_limit: float = float("inf")  # a larger gap is a problem: firing stopped longer than any failover takes

    @property
    def problems(self) -> list[str]:
        checks = [
            ("duplicate first attempts (database)", self.duplicate_rows),
            ("duplicate work (an attempt run twice, executor journals)", self.duplicate_runs),
            ("executions started on two executors (journals)", self.started_on_two),
            ("fire times neither executed nor recorded as misfired/skipped", self.unaccounted),
            ("misfire handling that contradicts the task's policy", self.policy_mismatches),
            ("executions non-terminal past timeout + grace", self.stuck),
            (f"executions stuck during the storm (overdue > {STUCK_AFTER_SECONDS:g} s)", self.stuck_during_storm),
            ("nodes whose clock was 30 s ahead that led", self.skewed_led),
            (f"dispatch gaps over {self.gap_limit:g} s", [f"{self.largest_dispatch_gap:.2f} s at "
                                                        f"t={self.largest_gap_at:.1f} s"]
             if self.largest_dispatch_gap > self.gap_limit else []),
            ("results applied twice (executor journals)", self.applied_twice_journal),
            ("results applied twice (web server log)", self.applied_twice_web),
            ("successes within their deadline refused (lost work)", self.refused_successes),
            ("sequential runs that overlapped (database)", self.sequential_overlaps),
            ("retries beyond max_retry or after a final success", self.extra_retries),
            ("retries owed but never created", self.lost_retries),
            ("workflow runs not in a final state", self.unfinished_runs),
            ("workflow nodes with two rows for one attempt", self.duplicate_nodes),
            ("workflow fires with two runs", self.duplicate_workflow_runs),
            ("workflow runs whose status contradicts their nodes", self.inconsistent_runs),
        ]
        return [f"{label}: {len(found)}, e.g. {found[:5]}" for label, found in checks if found]

    def recovery_table(self) -> list[str]:
        """One line per kind of disruption: how many, and the slowest recovery from the signal."""
        lines = ["  kind        count  to a live leader (max)  to the next dispatch (max)"]
        for kind in KINDS:
            events = [d for d in self.disruptions if d.kind == kind]
            if events:
                leader = max(d.recovered_in for d in events)
                dispatch = max((d.to_dispatch for d in events if d.to_dispatch is not None), default=0.0)
                lines.append(f"  {kind:<10} {len(events):>6}  {leader:>20.2f} s  {dispatch:>24.2f} s")
        return lines

    def report(self) -> str:
        kinds = Counter(d.kind for d in self.disruptions)
        leader = [d for d in self.disruptions if d.kind in LEADER_DISRUPTIONS]
        takeovers = sum(1 for d in leader if d.new_leader != d.node)
        recover = sorted(d.recovered_in for d in leader) or [0.0]
        dispatched = sorted(d.to_dispatch for d in self.disruptions if d.to_dispatch is not None) or [0.0]
        lines = [
            f"chaos report: seed {self.seed}, storm {self.seconds:.0f} s, settle {self.settle_seconds:.1f} s",
            f"disruptions: {len(self.disruptions)} (" + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            + f"); leader changed {takeovers} times",
            f"recovery, from the signal (SIGSTOP, not SIGCONT): to a live leader max {recover[-1]:.2f} s, median "
            f"{recover[len(recover) // 2]:.2f} s; to the next dispatch an executor received max "
            f"{dispatched[-1]:.2f} s, median {dispatched[len(dispatched) // 2]:.2f} s",
            f"largest gap between dispatches executors received: {self.largest_dispatch_gap:.2f} s "
            f"(at t={self.largest_gap_at:.1f} s; limit {self.gap_limit:g} s)",
            *self.recovery_table(),
            f"fire times in the window: {self.fire_times}: " + ", ".join(
                f"{kind} {n}" for kind, n in sorted(self.accounted.items())),
            f"execution rows: {sum(self.rows_by_status.values())} ({self.retries} retries): " + ", ".join(
                f"{status} {n}" for status, n in sorted(self.rows_by_status.items())),
            "callbacks (executor journals): " + ", ".join(
                f"{outcome} {n}" for outcome, n in sorted(self.callbacks.items()))
            + "; web server answered " + ", ".join(f"{code} x{n}" for code, n in sorted(self.web_callbacks.items())),
            f"results lost on purpose: {sum(self.dropped_results.values())}, ended as " + ", ".join(
                f"{status} {n}" for status, n in sorted(self.dropped_results.items())),
            f"results sent twice on purpose: {sum(self.repeated_results.values())}, second copy " + ", ".join(
                f"{outcome} {n}" for outcome, n in sorted(self.repeated_results.items())),
            "",
            f"  duplicate first attempts (database rows):            {len(self.duplicate_rows)}",
            f"  duplicate work (an attempt run twice, journals):     {len(self.duplicate_runs)}",
            f"  executions started on two executors (journals):      {len(self.started_on_two)}",
            f"  fire times unaccounted for:                          {len(self.unaccounted)}",
            f"  misfire handling contradicting the policy:           {len(self.policy_mismatches)}",
            f"  executions stuck during the storm:                   {len(self.stuck_during_storm)}",
            f"  nodes 30 s ahead that led:                           {len(self.skewed_led)}",
            f"  executions non-terminal at the end:                  {len(self.non_terminal)}",
            f"    of which past timeout + grace (or pending, due):   {len(self.stuck)}",
            f"  results applied twice (executor journals):           {len(self.applied_twice_journal)}",
            f"  results applied twice (web log, unbatched results):  {len(self.applied_twice_web)}",
            f"  successes within their deadline refused (lost work): {len(self.refused_successes)}",
            f"  successes refused, a retry had started (info only):  {len(self.superseded_successes)}",
            f"  runs lost (their executor gone; retried per policy): {self.lost_runs}",
            f"  sequential overlaps (database start/end):            {len(self.sequential_overlaps)}",
            f"  sequential overlaps seen by executors (info only):   {len(self.executor_overlaps)}",
            f"  retries beyond max_retry or after success:           {len(self.extra_retries)}",
            f"  retries owed but never created:                      {len(self.lost_retries)}",
            "workflow runs: " + ", ".join(f"{status} {n}" for status, n in sorted(self.workflow_runs.items())),
            f"  workflow runs not final / nodes twice / fires twice / inconsistent: {len(self.unfinished_runs)} / "
            f"{len(self.duplicate_nodes)} / {len(self.duplicate_workflow_runs)} / {len(self.inconsistent_runs)}",
        ]
        lines.append("RESULT: " + ("PASS" if not self.problems else "FAIL\n  " + "\n  ".join(self.problems)))
        return "\n".join(lines)


def audit(cluster: Cluster, first_fire: dict[str, datetime], *, seed: int, storm: Storm, window: tuple[float, float],
          settle_seconds: float, paused_at: datetime) -> Audit:
    """``window``: the storm's start and end (time.time())."""
    from executions.models import TaskExecution
    from tasks.models import Task

    longest = max((d.frozen_for for d in storm.disruptions), default=0.0)
    result = Audit(seed=seed, seconds=window[1] - window[0], disruptions=storm.disruptions,
                   settle_seconds=settle_seconds, stuck_during_storm=list(storm.watch.found.values()),
                   skewed_led=storm.skewed_led, gap_limit=longest + GAP_MARGIN_SECONDS
                   + child_tunable(cluster.procs, "SCHEDULER_LOCK_IDLE_TIMEOUT", "LOCK_IDLE_TIMEOUT_SECONDS"))
    tasks = {task.pk: task for task in Task.objects.filter(pk__in=list(first_fire))}
    rows = list(TaskExecution.objects.filter(task_id__in=list(tasks)).values(
        "id", "task_id", "scheduled_time", "trigger_type", "retry_count", "status", "logs", "start_time",
        "end_time", "deadline", "dispatch_after", "retry_of_id"))
    result.rows_by_status = Counter(row["status"] for row in rows)
    result.retries = sum(1 for row in rows if row["retry_count"] > 0)
    result.duplicate_rows = cluster.duplicate_fires()
    _check_fire_times(result, tasks, first_fire, rows, paused_at)
    journals = {instance_id: child.journal() for instance_id, child in cluster.executors.items()}
    journal = [event for events in journals.values() for event in events]
    _check_runs(result, journal)
    _check_started_on_two(result, journals)
    _check_dispatch_gaps(result, journal, window)
    _check_callbacks(result, journal, cluster.procs.web_log_text(), rows)
    _check_refused_successes(result, journal, rows)
    result.lost_runs = sum(1 for row in rows if row["status"] == "failed" and "lost: " in (row["logs"] or ""))
    grace = timedelta(seconds=child_tunable(cluster.procs, "SCHEDULER_TIMEOUT_GRACE_SECONDS", "TIMEOUT_GRACE_SECONDS"))
    _check_stuck(result, rows, datetime.now(UTC), grace)
    _check_sequential(result, tasks, rows, journal)
    _check_retries(result, tasks, rows)
    _check_workflows(result)
    return result


def _check_workflows(result: Audit) -> None:
    """Invariant 7. A node's attempt is its (node key, retry_count, shard: a broadcast node's shards share its
    key); executions started twice are already caught by _check_runs, which reads every execution in the
    journals."""
    from django.db.models import Count

    from executions.models import TaskExecution
    from workflows.models import WorkflowRun
    from workflows.runs import node_states

    runs = list(WorkflowRun.objects.all())
    result.workflow_runs = Counter(run.status for run in runs)
    result.unfinished_runs = [f"{run.pk} {run.status}" for run in runs if run.status in ("pending", "running")]
    result.duplicate_nodes = [f"{row['node_key']} attempt {row['retry_count']} shard {row['shard']} x{row['n']}"
                              for row in TaskExecution.objects.exclude(node_key="").values("node_key", "retry_count",
                                                                                           "shard")
                              .annotate(n=Count("id")).filter(n__gt=1)]
    result.duplicate_workflow_runs = [f"{row['workflow_id']} @ {row['scheduled_time']}" for row in
                                      WorkflowRun.objects.values("workflow_id", "scheduled_time", "trigger_type")
                                      .annotate(n=Count("id")).filter(n__gt=1)]
    for run in runs:
        states = set(node_states(run).values())
        if run.status == "success" and not states <= {"succeeded", "skipped", "failed"}:
            result.inconsistent_runs.append(f"{run.pk} success with nodes {sorted(states)}")
        if run.status == "failed" and "failed" not in states:
            result.inconsistent_runs.append(f"{run.pk} failed with no failed node")


def _check_fire_times(result: Audit, tasks: dict[str, Any], first_fire: dict[str, datetime],
                      rows: list[dict], paused_at: datetime) -> None:
    """Walks each task's schedule from its first fire up to the pause (a bound the audit chose, not the
    task's next_run_time, which the system under test writes) and accounts for every time. Times after the
    pause are walked only to close a gap: a fire_once run just after it may count missed times before it."""
    first_attempts = {(row["task_id"], row["scheduled_time"]): row for row in rows
                      if row["retry_count"] == 0 and row["trigger_type"] == "scheduled"}
    for task_id, task in tasks.items():
        schedule = task.schedule()
        gap: list[datetime] = []  # fire times without a row since the last one that has a row
        current = first_fire[task_id]
        while current is not None and (current <= paused_at or (gap and _may_close(task, current))):
            row = first_attempts.get((task_id, current))
            if current <= paused_at:
                result.fire_times += 1
            if row is None:
                if current <= paused_at:
                    gap.append(current)
            else:
                if current <= paused_at:
                    _account_row(result, task, row)
                _account_gap(result, task, row, gap)
                gap = []
            current = schedule.next_after(current)
        for scheduled in gap:  # nothing recorded after them at all
            result.unaccounted.append(f"{task.name} @ {scheduled.isoformat()} (no later row)")


def _may_close(task: Any, scheduled: datetime) -> bool:
    """Whether a row at ``scheduled`` (after the pause) could exist: firing got that far."""
    return task.next_run_time is not None and scheduled < task.next_run_time


def _account_row(result: Audit, task: Any, row: dict) -> None:
    """Classifies one recorded fire."""
    logs = row["logs"] or ""
    note = MISFIRE_NOTE.search(logs)
    if row["status"] != "skipped":
        kind = "executed"
    elif any(reason in logs for reason in MODE_SKIP_REASONS):
        kind = "skipped (execution mode)"
    elif task.misfire_policy == "fire_once" and note is not None and NEVER_SENT in logs:
        kind = FIRED_AHEAD_FOLDED  # created ahead, never sent: a later run stands for its window
    else:
        kind = "skipped (misfire policy skip)"
        if note is None or task.misfire_policy != "skip":
            result.policy_mismatches.append(f"{task.name} ({task.misfire_policy}) @ "
                                            f"{row['scheduled_time'].isoformat()}: skipped, logs {logs[:80]!r}")
    result.accounted[kind] += 1


def _account_gap(result: Audit, task: Any, row: dict, gap: list[datetime]) -> None:
    """The row-less fire times just before ``row``: legitimate only under fire_once, folded into this run and
    counted in its note."""
    if not gap:
        return
    note = MISFIRE_NOTE.search(row["logs"] or "")
    covered = note is not None and (note.group(2) is not None or len(gap) <= int(note.group(1)))
    if task.misfire_policy == "fire_once" and covered:
        result.accounted[FOLDED_BY_FIRE_ONCE] += len(gap)
        return
    why = f"note {note.group(0)!r}" if note else "no misfire note"
    for scheduled in gap:
        result.unaccounted.append(f"{task.name} ({task.misfire_policy}) @ {scheduled.isoformat()}: next row "
                                  f"{row['id']} @ {row['scheduled_time'].isoformat()} has {why}")


def _check_runs(result: Audit, journal: list[dict]) -> None:
    """Executor side, for every attempt of every fire (first runs and retries): a handler started more than
    once, on any executor, for one (task, scheduled time, retry[, broadcast shard]) or one execution."""
    fires = {e["execution_id"]: _attempt_key(e) for e in journal if e["event"] == "execute"}
    starts = Counter(fires.get(e["execution_id"]) for e in journal if e["event"] == "start")
    by_execution = Counter(e["execution_id"] for e in journal if e["event"] == "start")
    result.duplicate_runs = [f"{key} started {n} times" for key, n in starts.items() if key is not None and n > 1]
    result.duplicate_runs += [f"execution {eid} started {n} times" for eid, n in by_execution.items() if n > 1]


def _attempt_key(execute: dict) -> tuple:
    """One attempt of one fire, from its dispatch: a broadcast fire's shards are attempts of their own."""
    key = (execute.get("task_id"), execute.get("scheduled_time"), execute.get("retry_count"))
    return key if execute.get("shard_index") is None else (*key, f"shard {execute['shard_index']}")


def _check_started_on_two(result: Audit, journals: dict[str, list[dict]]) -> None:
    """Executor side: no execution's handler began on two executors (a frozen executor that read a dispatch
    after its accept-by, or ran a run whose lease had gone to another, would show here)."""
    where: dict[str, set[str]] = defaultdict(set)
    for instance_id, events in journals.items():
        for event in events:
            if event["event"] == "start":
                where[event["execution_id"]].add(instance_id)
    result.started_on_two = sorted(f"execution {pk} started on {', '.join(sorted(executors))}"
                                   for pk, executors in where.items() if len(executors) > 1)


def _check_dispatch_gaps(result: Audit, journal: list[dict], window: tuple[float, float]) -> None:
    """From the executors' side: how long after each disruption the next dispatch arrived, and the longest
    time no dispatch arrived at all during the storm (the workload fires ~20 times a second)."""
    times = sorted(e["t"] for e in journal if e["event"] == "execute" and window[0] <= e["t"] <= window[1])
    for disruption in result.disruptions:
        after = bisect.bisect_left(times, disruption.wall)
        disruption.to_dispatch = times[after] - disruption.wall if after < len(times) else None
    gaps = [(later - earlier, earlier) for earlier, later in zip(times, times[1:], strict=False)]
    gap, at = max(gaps, default=(0.0, window[0]))
    result.largest_dispatch_gap, result.largest_gap_at = gap, at - window[0]


def _check_callbacks(result: Audit, journal: list[dict], web_log: str, rows: list[dict]) -> None:
    status = {row["id"]: row["status"] for row in rows}
    attempts = [e for e in journal if e["event"] == "callback"]
    result.callbacks = Counter(e["outcome"] for e in attempts)
    delivered = Counter(e["execution_id"] for e in attempts if e["outcome"] == "delivered")
    result.applied_twice_journal = [f"{eid} applied {n} times" for eid, n in delivered.items() if n > 1]
    answers = CALLBACK_LINE.findall(web_log)
    result.web_callbacks = Counter(code for _, code in answers)
    applied = Counter(eid for eid, code in answers if code.startswith("2"))
    result.applied_twice_web = [f"{eid} answered 2xx {n} times" for eid, n in applied.items() if n > 1]
    result.dropped_results = Counter(status.get(e["execution_id"], "unknown") for e in journal
                                     if e["event"] == "callback_dropped")
    repeated = {e["execution_id"] for e in journal if e["event"] == "callback_repeated"}
    outcomes: dict[str, list[str]] = defaultdict(list)
    for event in attempts:
        if event["execution_id"] in repeated and event["outcome"] != "retry":
            outcomes[event["execution_id"]].append(event["outcome"])
    result.repeated_results = Counter(outs[-1] if len(outs) > 1 else "not sent (executor stopped)"
                                      for outs in outcomes.values())


def _check_refused_successes(result: Audit, journal: list[dict], rows: list[dict]) -> None:
    """A handler that succeeded before its run's deadline, whose result the scheduler refused (already final,
    or dropped) and whose run did not end ``success`` anyway (a sweep may take a result through /status).
    Refused while a retry replaced the run: superseded (reported); otherwise lost work (a problem)."""
    by_id = {row["id"]: row for row in rows}
    retried = {row["retry_of_id"] for row in rows if row["retry_of_id"]}
    succeeded = {e["execution_id"]: e["t"] for e in journal if e["event"] == "end" and e["outcome"] == "success"}
    outcomes: dict[str, set[str]] = defaultdict(set)
    for event in journal:
        if event["event"] == "callback" and event.get("status") == "success":
            outcomes[event["execution_id"]].add(event["outcome"])
    for execution_id, ended in succeeded.items():
        row, seen = by_id.get(execution_id), outcomes.get(execution_id, set())
        if row is None or row["status"] == "success" or "delivered" in seen or not seen - {"retry"}:
            continue  # applied, or never answered (a result lost on purpose, or still queued at the end)
        if row["deadline"] is not None and ended > row["deadline"].timestamp():
            continue  # finished past its deadline: refusing it is the timeout rule
        label = f"{execution_id} ({row['status']}, callbacks {sorted(seen)})"
        (result.superseded_successes if execution_id in retried else result.refused_successes).append(label)


def _check_stuck(result: Audit, rows: list[dict], now: datetime, grace: timedelta) -> None:
    for row in rows:
        if row["status"] not in ("pending", "running"):
            continue
        label = f"{row['id']} ({row['status']}, task {row['task_id']} @ {row['scheduled_time'].isoformat()})"
        result.non_terminal.append(label)
        overdue = (row["deadline"] is not None and row["deadline"] + grace < now) if row["status"] == "running" \
            else row["dispatch_after"] + grace < now
        if overdue:
            result.stuck.append(label)


def _overlaps(intervals: list[tuple[Any, Any, str]]) -> list[tuple[str, str]]:
    """Pairs of (start, end, id) intervals where one starts before the previous one ended."""
    found = []
    ordered = sorted(intervals, key=lambda item: item[0])
    for (_, end, previous), (start, _, current) in zip(ordered, ordered[1:], strict=False):
        if end is None or start < end:
            found.append((previous, current))
    return found


def _check_sequential(result: Audit, tasks: dict[str, Any], rows: list[dict], journal: list[dict]) -> None:
    sequential = {task_id for task_id, task in tasks.items() if task.execution_mode == "sequential"}
    per_task: dict[str, list] = defaultdict(list)
    for row in rows:
        if row["task_id"] in sequential and row["start_time"] is not None:
            per_task[row["task_id"]].append((row["start_time"], row["end_time"], row["id"]))
    for task_id, intervals in per_task.items():
        for previous, current in _overlaps(intervals):
            result.sequential_overlaps.append(f"{tasks[task_id].name}: {previous} / {current}")
    # What the executors saw: a handler the scheduler gave up on (timeout) may still be winding down when
    # the next run starts, so this is reported, not asserted.
    task_of = {e["execution_id"]: e.get("task_id") for e in journal if e["event"] == "execute"}
    began = {e["execution_id"]: e["t"] for e in journal if e["event"] == "start"}
    ended = {e["execution_id"]: e["t"] for e in journal if e["event"] == "end"}
    handler_runs: dict[str, list] = defaultdict(list)
    for execution_id, start in began.items():
        if task_of.get(execution_id) in sequential:
            handler_runs[task_of[execution_id]].append((start, ended.get(execution_id), execution_id))
    for task_id, intervals in handler_runs.items():
        for previous, current in _overlaps(intervals):
            result.executor_overlaps.append(f"{tasks[task_id].name}: {previous} / {current}")


def _check_retries(result: Audit, tasks: dict[str, Any], rows: list[dict]) -> None:
    """Each fire's attempts form a chain 0, 1, … that goes on exactly while an attempt failed or timed out
    and the task's max_retry allows another."""
    chains: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for row in rows:
        chains[(row["task_id"], row["scheduled_time"], row["trigger_type"])][row["retry_count"]] = row
    for (task_id, scheduled, _), chain in chains.items():
        task = tasks[task_id]
        if len(chain) > 1 and _withdrawn(chain[max(chain)]):  # the attempt before it reported late, in time
            del chain[max(chain)]
        last = max(chain)
        label = f"{task.name} @ {scheduled.isoformat()} (max_retry {task.max_retry})"
        if last > task.max_retry or any(chain[n]["status"] not in ("failed", "timeout") for n in chain if n < last):
            result.extra_retries.append(f"{label}: attempts {sorted((n, chain[n]['status']) for n in chain)}")
        elif chain[last]["status"] in ("failed", "timeout") and last < task.max_retry:
            result.lost_retries.append(f"{label}: attempt {last} {chain[last]['status']} ({chain[last]['id']})")


def _withdrawn(row: dict) -> bool:
    """A retry cancelled before it started because the attempt it retried delivered a success late, within
    its deadline (executions.services: the work was done and must not run again)."""
    return row["status"] == "cancelled" and RETRY_WITHDRAWN in (row["logs"] or "")


# --- the whole run -----------------------------------------------------------------------------------

def run_chaos(procs: Processes, *, seconds: float, seed: int, gap: tuple[float, float],
              freeze: tuple[float, float] = (1.0, 9.0), settle_timeout: float = 90, defaults: bool = False,
              say: Callable[[str], None] = print) -> Audit:
    """Starts the cluster on ``procs``, creates the workload, runs the storm for ``seconds``, settles, stops
    every node and audits. ``defaults``: at the README's defaults instead of the fast test tunables. The
    caller owns ``procs`` (and closes it)."""
    rng = random.Random(seed)
    if defaults:
        use_defaults(procs)
    else:
        procs.env.update(CHAOS_TUNABLES)
    say(f"chaos: seed {seed}, {seconds:.0f} s storm, disruptions every {gap[0]:g}-{gap[1]:g} s, "
        f"freezes {freeze[0]:g}-{freeze[1]:g} s; logs in {procs.log_dir}")
    db = through_proxy(procs)
    cluster = start_cluster(procs)
    specs = workload(rng)
    first_fire = create_tasks(cluster, specs, datetime.now(UTC))
    create_workflow(cluster, datetime.now(UTC))
    say(f"chaos: {len(specs)} tasks and a workflow created; leader {cluster.leaders()}")
    storm = Storm(cluster, rng, gap=gap, freeze=freeze, db=db, say=say)
    began = time.time()
    storm.run(seconds)
    window = (began, time.time())
    storm.wait_leader()  # the last disruption has healed: settling needs a leader
    paused_at, settle_seconds = settle(cluster, list(first_fire), settle_timeout)
    return audit(cluster, first_fire, seed=seed, storm=storm, window=window, settle_seconds=settle_seconds,
                 paused_at=paused_at)
