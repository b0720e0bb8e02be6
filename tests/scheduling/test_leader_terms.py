"""Fencing by leadership term: every election increments the lock's term under the lock, and a leader's
writes (fires, claims, timeouts) commit only while its term is the current one. Two nodes whose locks both
answer "held" stand for a leader that lost its lock without knowing yet (frozen, or its check raced the
server): the deposed one's writes are refused by the database and it steps down."""

import pytest

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduling.engine import SchedulerNode
from scheduling.firing import fire_due
from scheduling.leader import Deposed
from scheduling.models import LeaderTerm, SchedulerInstance
from tasks.models import Task
from tests.scheduling.conftest import T0
from tests.scheduling.test_engine_tick import FakeLock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nodes(clock):
    made = [SchedulerNode(instance_id=name, host="127.0.0.1", port=1, lock=FakeLock(), clock=clock)
            for name in ("node-a", "node-b")]
    for node in made:
        node.register(clock.now)
    yield made
    for node in made:
        node.dispatcher.shutdown()


def elect(node, now=T0) -> None:
    assert node.hold_leadership(now)


def term_of(instance_id: str) -> int | None:
    return SchedulerInstance.objects.get(instance_id=instance_id).leader_term


def test_each_election_starts_a_higher_term_recorded_with_the_leader(nodes):
    a, b = nodes
    elect(a)
    a.step_down(T0, "test")
    elect(b)

    assert (term_of("node-a"), term_of("node-b")) == (1, 2)
    assert LeaderTerm.objects.get(name="fake").term == 2 and LeaderTerm.objects.get(name="fake").holder == "node-b"
    assert (a.fence.term, b.fence.term) == (None, 2)


def test_a_deposed_leaders_fire_is_refused_and_it_steps_down(nodes, make_task, caplog):
    a, b = nodes
    task = make_task()
    elect(a)
    elect(b)  # a's lock still answers "held": only the term tells it apart

    a.tick(T0)

    assert not a.is_leader and "fenced off: term 1 is over: the current term is 2" in caplog.text
    assert TaskExecution.objects.count() == 0 and Task.objects.get(pk=task.pk).next_run_time == T0
    b.tick(T0)
    assert TaskExecution.objects.filter(task=task, scheduled_time=T0).count() == 1


def test_a_deposed_leaders_claim_is_refused_so_nothing_is_sent(nodes, make_task, make_executor):
    a, b = nodes
    task = make_task()
    make_executor(tasks=[task])
    elect(a)
    fire_due(T0)  # a pending run, due
    elect(b)

    with pytest.raises(Deposed):
        a.dispatcher.dispatch_pending(T0)

    assert list(TaskExecution.objects.values_list("status", "executor_id")) == [(ExecutionStatus.PENDING, None)]


def test_a_deposed_leaders_timeout_sweep_is_refused(nodes, make_task, clock):
    a, b = nodes
    task = make_task(timeout_seconds=1)
    run = TaskExecution.objects.create(task=task, scheduled_time=T0, status=ExecutionStatus.RUNNING,
                                       start_time=T0, deadline=T0)
    elect(a)
    elect(b)

    with pytest.raises(Deposed):
        a.dispatcher.sweep_timeouts(clock.advance(minutes=5))

    run.refresh_from_db()
    assert run.status == ExecutionStatus.RUNNING
