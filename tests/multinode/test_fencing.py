"""In-process companions of test_leadership.py: what a leader resumed after a freeze does in the very tick
it wakes up in. A real SIGSTOP cannot be aimed at a chosen line, so the freeze is simulated with a lock that
is lost (and a monotonic clock that jumps) at a chosen moment. Runs on any database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executions.models import TaskExecution
from scheduling import engine
from scheduling.engine import SchedulerNode
from scheduling.models import SchedulerInstance
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class FrozenLock:
    """A lock whose holder 'freezes' right after a successful check, if asked: while it is frozen the
    server frees the lock (another node takes it) and ``freeze_for`` seconds pass."""

    name = "fake"
    keepalive_seconds = None

    def __init__(self, clock: list[float]) -> None:
        self.held = False
        self.clock = clock
        self.freeze_for: float | None = None
        self.leaders_seen_at_check: list[list[str]] = []

    def try_acquire(self) -> bool:
        self.held = True
        return True

    def still_held(self) -> bool:
        self.leaders_seen_at_check.append(
            sorted(SchedulerInstance.objects.filter(is_leader=True).values_list("instance_id", flat=True)))
        held = self.held
        if held and self.freeze_for is not None:
            self.clock[0] += self.freeze_for
            self.held = False
            self.freeze_for = None
        return held

    def release(self) -> None:
        self.held = False


@pytest.fixture
def node(monkeypatch, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL_SECONDS": 1.0}
    mono = [1000.0]
    monkeypatch.setattr(engine, "time", type("FakeTime", (), {"monotonic": staticmethod(lambda: mono[0])}),
                        raising=False)
    instance = SchedulerNode(instance_id="node-a", host="127.0.0.1", port=1, lock=FrozenLock(mono),
                             clock=lambda: T0)
    instance.register(T0)
    assert instance.hold_leadership(T0)
    yield instance
    instance.dispatcher.shutdown()


def test_resumed_leader_checks_the_lock_before_its_heartbeat_rewrites_is_leader(node):
    # While node-a was frozen its lock was freed and node-b was elected (which cleared node-a's flag).
    SchedulerInstance.objects.create(instance_id="node-b", host="h", port=2, is_leader=True)
    SchedulerInstance.objects.filter(instance_id="node-a").update(is_leader=False)
    node.lock.held = False
    node.lock.leaders_seen_at_check.clear()

    node.tick(T0 + timedelta(seconds=10))  # its heartbeat is long due

    assert not node.is_leader
    assert node.lock.leaders_seen_at_check == [["node-b"]], "the heartbeat wrote is_leader=True before fencing"
    assert list(SchedulerInstance.objects.filter(is_leader=True).values_list("instance_id", flat=True)) == ["node-b"]


def test_leader_frozen_mid_tick_confirms_the_lock_again_before_writing(node):
    Task.objects.create(name="due", cron_expression="*/1 * * * * *", next_run_time=T0)
    node.lock.freeze_for = 10.0  # frozen right after this tick's fencing check; the lock is gone on waking

    node.tick(T0)

    assert not node.is_leader, "the stalled tick went on as leader"
    assert TaskExecution.objects.count() == 0, "a deposed leader fired"
    assert Task.objects.get(name="due").next_run_time == T0


def test_a_tick_that_did_not_stall_does_not_pay_for_extra_checks(node):
    Task.objects.create(name="due", cron_expression="*/1 * * * * *", next_run_time=T0)
    node.lock.leaders_seen_at_check.clear()

    node.tick(T0)

    assert node.is_leader and TaskExecution.objects.filter(retry_count=0, scheduled_time=T0).count() == 1
    assert len(node.lock.leaders_seen_at_check) == 1  # one fencing check per tick when nothing stalls
