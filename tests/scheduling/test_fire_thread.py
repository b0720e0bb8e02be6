"""Firing on a thread of its own (scheduling.fire_thread): it fires only within the term it began a round in
and while the lock is confirmed, hands what it wrote to the loop thread (which stages it), survives database
errors and deposition, and its fences let the leader's writers run side by side while a new term's increment
still waits for them."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, connections, transaction

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduling.engine import SchedulerNode
from scheduling.fire_thread import FireThread
from scheduling.leader import Deposed, Fence
from scheduling.models import LeaderTerm
from tasks.models import Task
from tests.scheduling.conftest import T0
from tests.scheduling.test_engine_tick import FakeLock

WAIT = 10.0  # seconds any condition below is given before the test fails


def wait_for(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Leadership:
    """What the thread asks the node: the current term and whether the lock is confirmed."""

    def __init__(self, term=1, confirmed=True):
        self.term = term
        self.confirmed = confirmed


def thread_with(fire, leadership, wakes=None):
    return FireThread(fire=fire, term=lambda: leadership.term, confirmed=lambda: leadership.confirmed,
                      clock=lambda: T0, idle_seconds=0.01, wake=lambda: wakes.append(1) if wakes is not None else None)


def test_a_round_hands_its_rows_to_the_loop_tagged_with_its_term():
    leadership, wakes = Leadership(term=7), []

    def fire(now, *, still_leading, on_written):
        assert now == T0 and still_leading()
        on_written(["run-1", "run-2"])
        on_written([])  # nothing to hand over: no wake
        return 2

    firing = thread_with(fire, leadership, wakes)
    assert firing.round(7) == 2
    assert wakes == [1]
    assert firing.take_written(7) == ["run-1", "run-2"]
    assert firing.take_written(7) == []


def test_rows_of_an_earlier_term_are_dropped_not_staged():
    leadership = Leadership(term=1)
    firing = thread_with(lambda now, *, still_leading, on_written: on_written(["old"]) or 1, leadership)
    firing.round(1)
    assert firing.take_written(2) == []  # elected again meanwhile: the pending row is found in the database


@pytest.mark.parametrize("term, confirmed", [(2, True), (None, True), (1, False)])
def test_no_round_outside_the_term_or_once_the_lock_is_not_confirmed(term, confirmed):
    calls = []
    firing = thread_with(lambda *args, **kwargs: calls.append(1) or 1, Leadership(term=term, confirmed=confirmed))
    assert firing.round(1) == 0
    assert calls == []


def test_between_chunks_it_stops_when_the_term_ends():
    leadership = Leadership(term=3)
    asked = []

    def fire(now, *, still_leading, on_written):
        asked.append(still_leading())
        leadership.term = None  # stepped down while the first chunk was written
        asked.append(still_leading())
        return 1

    thread_with(fire, leadership).round(3)
    assert asked == [True, False]


def test_the_thread_fires_only_while_leading_and_survives_errors_and_deposition():
    leadership = Leadership(term=None)
    outcomes = iter([DatabaseError("gone away"), Deposed("term 1 is over"), RuntimeError("bug")])
    fired = threading.Event()

    def fire(now, *, still_leading, on_written):
        outcome = next(outcomes, None)
        if outcome is not None:
            raise outcome
        fired.set()
        return 0

    firing = thread_with(fire, leadership)
    firing.start()
    try:
        time.sleep(0.05)
        assert not fired.is_set()  # not leading: no round at all
        leadership.term = 1
        firing.nudge()
        assert fired.wait(WAIT), "the thread died on an error instead of firing again"
    finally:
        firing.stop(timeout=WAIT)
    assert not firing._thread.is_alive()


# --- with a node and the database ---------------------------------------------------------------------------

@pytest.fixture
def node(clock, transactional_db):
    instance = SchedulerNode(instance_id="node-a", host="127.0.0.1", port=8000, lock=FakeLock(), clock=clock)
    instance.register(clock.now)
    yield instance
    instance.dispatcher.shutdown()


def test_with_a_firing_thread_the_tick_stages_what_the_thread_fired(node, clock, make_task, make_executor):
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    node.firing = node.fire_thread(idle_seconds=0.2)
    assert node.tick(T0) is False  # elected; the tick itself fires nothing
    assert TaskExecution.objects.count() == 0

    fired = node.firing.round(node.fence.term)  # fired ahead on the thread: T0+1 s ... T0+FIRE_AHEAD
    runs = list(TaskExecution.objects.filter(task=task))
    assert fired == len(runs) == int(node.fire_ahead.total_seconds())
    assert {run.status for run in runs} == {ExecutionStatus.PENDING}
    assert not any(run.pk in node.dispatcher.staging for run in runs)

    node.tick(T0)
    assert all(run.pk in node.dispatcher.staging for run in runs)  # handed over: staged, or held until 2 s ahead


def test_a_deposed_nodes_firing_thread_writes_nothing(node, clock, make_task):
    task = make_task()
    node.firing = node.fire_thread(idle_seconds=0.2)
    node.tick(T0)
    term = node.fence.term
    LeaderTerm.objects.filter(name=node.fence.name).update(term=term + 1)  # another node was elected

    with pytest.raises(Deposed):
        node.firing.round(term)
    assert TaskExecution.objects.count() == 0 and Task.objects.get(pk=task.pk).next_run_time == T0


server_only = pytest.mark.skipif(connection.vendor == "sqlite",
                                 reason="SQLite has one writer: its fenced transactions run one at a time")


def _in_thread(target):
    """Runs ``target`` on a thread of its own (its own connection), closing that connection at the end."""
    def run():
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@server_only
@pytest.mark.django_db(transaction=True)
def test_a_leaders_fenced_transactions_do_not_wait_for_each_other_but_a_new_term_waits_for_them():
    Fence("shared-fence").begin("node-a", T0)
    held, release = threading.Event(), threading.Event()
    second_done, election_done = threading.Event(), threading.Event()

    def first_writer():
        fence = Fence("shared-fence")
        fence.term = 1
        with fence.atomic():
            held.set()
            release.wait(WAIT)

    def second_writer():
        fence = Fence("shared-fence")
        fence.term = 1
        with fence.atomic():
            pass
        second_done.set()

    def election():
        with transaction.atomic():
            Fence("shared-fence").begin("node-b", T0)
        election_done.set()

    first = _in_thread(first_writer)
    assert held.wait(WAIT)
    _in_thread(second_writer).join(WAIT)
    assert second_done.is_set(), "a fenced transaction waited for another of the same term"

    _in_thread(election)
    assert not election_done.wait(0.5), "the new term did not wait for the open fenced transaction"
    release.set()
    first.join(WAIT)
    assert election_done.wait(WAIT)
    assert LeaderTerm.objects.get(name="shared-fence").term == 2
