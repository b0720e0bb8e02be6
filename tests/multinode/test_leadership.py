"""Three ``manage.py runscheduler`` nodes on one database: election, and failover when the leader is killed
(SIGKILL), frozen (SIGSTOP, then SIGCONT) or stopped (SIGTERM).

Needs a database whose leader lock is a server-side session lock (MySQL/MariaDB GET_LOCK or a PostgreSQL
advisory lock): the SQLite file lock is for one node only and cannot free a frozen holder's lock.
The failover figures are printed even when the tests pass.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest
from django.db import connection
from django.utils import timezone

from executions.models import TaskExecution
from scheduling.models import SchedulerInstance
from tests.processes import FAST_TUNABLES

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                       reason="needs a server-side session lock: MySQL/MariaDB or PostgreSQL"),
]

NODES = ("n1", "n2", "n3")
EVERY_SECOND = "*/1 * * * * *"
IDLE_TIMEOUT = int(FAST_TUNABLES["SCHEDULER_LOCK_IDLE_TIMEOUT"])


@pytest.fixture
def running(cluster):
    """Three nodes, one executor, a per-second task that has already run. Short HTTP timeouts: a node
    shutting down waits for its in-flight dispatches and health checks (after giving up the lock)."""
    cluster.start(schedulers=NODES, executors=["ex-a"],
                  scheduler_env={"SCHEDULER_DISPATCH_TIMEOUT": "2", "HEALTH_CHECK_TIMEOUT": "2"})
    cluster.task = cluster.make_task("echo.multinode", cron=EVERY_SECOND, parameters={"k": "v"}, timeout_seconds=10)
    cluster.wait_until(lambda: cluster.executions(cluster.task["id"], status="success"), 15,
                       "the per-second task to run")
    return cluster


def first_start_after(cluster, moment: datetime) -> datetime | None:
    return (TaskExecution.objects.filter(task_id=cluster.task["id"], start_time__gt=moment)
            .order_by("start_time").values_list("start_time", flat=True).first())


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[failover] {line}")


def assert_stable_leader(cluster, leader: str, seconds: float = 1.0) -> None:
    """Observes the leader rows for a while: exactly ``leader``, every time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert cluster.leaders() == [leader]
        time.sleep(0.05)


def assert_each_fire_once(cluster) -> None:
    """No fire key twice in the database, and no fire dispatched twice to the executor."""
    assert cluster.duplicate_fires() == []
    scheduled = [r.scheduled_time for r in cluster.executions(cluster.task["id"], trigger_type="scheduled",
                                                              retry_count=0)]
    assert len(scheduled) == len(set(scheduled))
    delivered = cluster.executors["ex-a"].events("execute")
    ids = [e["execution_id"] for e in delivered]
    assert len(ids) == len(set(ids)), "an execution was dispatched twice"
    fires = [(e["task_id"], e["scheduled_time"], e["retry_count"]) for e in delivered]
    assert len(fires) == len(set(fires)), "one fire reached the executor twice"


def test_one_leader_among_three_then_sigkill_hands_over_within_two_seconds(running, capsys):
    old = running.wait_one_leader()
    assert_stable_leader(running, old, 1.0)
    elected = [i for i, node in running.schedulers.items() if "is now the leader" in node.log_text()]
    assert elected == [old]

    node = running.schedulers[old]
    node.send(signal.SIGKILL)
    killed_at = timezone.now()  # a pending SIGKILL runs no more user code: later starts are the new leader's
    node.wait(5)

    new = running.wait_one_leader(10, other_than=old)
    started = running.wait_until(lambda: first_start_after(running, killed_at), 10,
                                 "a run dispatched by the new leader")
    failover = (started - killed_at).total_seconds()
    report(capsys, f"SIGKILL: {new} dispatching {failover:.3f} s after {old} was killed")
    assert failover < 3.0  # typically < 1.2 s: election retry 0.2 s + the wait for the next cron second
    assert_each_fire_once(running)


def test_frozen_leader_is_replaced_then_steps_down_when_resumed(running, capsys):
    old = running.wait_one_leader()
    node = running.schedulers[old]
    node.freeze()
    stopped_at = timezone.now()

    new = running.wait_one_leader(IDLE_TIMEOUT + 10, other_than=old)
    started = running.wait_until(lambda: first_start_after(running, stopped_at), 10,
                                 "a run dispatched by the new leader")
    takeover = (started - stopped_at).total_seconds()
    leader_since = SchedulerInstance.objects.get(instance_id=new).leader_since
    elected_after = (leader_since - stopped_at).total_seconds()
    report(capsys, f"SIGSTOP: {new} elected {elected_after:.3f} s and dispatching {takeover:.3f} s after {old} "
                   f"froze (lock idle timeout {IDLE_TIMEOUT} s)")
    # Not before the server could have freed the frozen session's lock (that would be two leaders at once).
    assert elected_after >= IDLE_TIMEOUT - 0.5
    assert takeover < IDLE_TIMEOUT + 4

    resumed_at = timezone.now()
    node.thaw()
    running.wait_until(lambda: f"scheduler {old} stepped down: lost the leader lock" in node.log_text(), 10,
                       "the resumed node to notice it lost the lock and step down")
    assert node.alive
    assert_stable_leader(running, new, 1.0)
    assert node.log_text().count("is now the leader") == 1, "the resumed node took the lead again"
    assert SchedulerInstance.objects.get(instance_id=old).is_leader is False
    # The cluster goes on firing after the resume, and every fire is still recorded and dispatched once.
    running.wait_until(lambda: running.executions(running.task["id"], status="success",
                                                  scheduled_time__gt=resumed_at), 10, "a run after the resume")
    assert_each_fire_once(running)


def test_sigterm_of_the_leader_releases_the_lock_at_once_even_with_a_dispatch_hanging(running, capsys):
    """A frozen executor accepts connections but never answers: the leader's dispatch to it and its health
    checks hang for up to their timeouts. Shutting down must not keep the lock while they do."""
    old = running.wait_one_leader()
    node = running.schedulers[old]
    running.executors["ex-a"].freeze()
    frozen_at = timezone.now()
    running.wait_until(lambda: first_start_after(running, frozen_at), 5, "a dispatch to the frozen executor")

    term_at = timezone.now()
    node.send(signal.SIGTERM)
    new = running.procs.wait_until(lambda: (leaders := running.leaders()) and leaders != [old] and leaders[0],
                                   10, "a follower to take over", watch=[running.web])
    handover = (SchedulerInstance.objects.get(instance_id=new).leader_since - term_at).total_seconds()
    report(capsys, f"SIGTERM: {new} elected {handover:.3f} s after {old} was asked to stop "
                   "(a dispatch to a hung executor in flight)")
    assert handover < 2.0
    assert node.wait(15) == 0
    assert running.leaders() == [new]
    assert SchedulerInstance.objects.get(instance_id=old).is_leader is False
    assert f"scheduler {old} stepped down: shutting down" in node.log_text()
    assert f"scheduler {old} stopped" in node.log_text()
    exited_at = timezone.now()
    running.wait_until(lambda: first_start_after(running, exited_at), 10, "a run dispatched by the new leader")
    assert running.duplicate_fires() == []
