"""The leader's side of the lease protocol, against the database with a fake transport: attempts and
accept-by at dispatch, failover only once an attempt cannot start, the re-check before a POST, the misfire
policy of runs fired ahead and sent late, and the sweeps that ask the executor before declaring."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.client import Unreachable
from scheduling.firing import fire_due
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import Executors, dispatch, make_dispatcher, only_execution, posts, sweep

pytestmark = pytest.mark.django_db(transaction=True)
AHEAD = timedelta(seconds=2)


@pytest.fixture
def transport():
    return Executors()



def test_an_unanswered_attempt_goes_elsewhere_only_once_its_executor_says_it_does_not_hold_it(
        make_task, make_executor, dispatcher, transport, clock):
    task = make_task(load_balance_strategy="sticky")
    slow = make_executor(tasks=[task], priority=0)
    up = make_executor(tasks=[task], priority=1)
    transport.answers[slow.base_url] = Unreachable("TimeoutError")  # it may read the request later
    transport.states[slow.base_url] = {}  # asked after the accept-by: it never took the run
    fire_due(T0)
    dispatch(dispatcher, T0)
    first, second = posts(transport)
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert transport.slept == [pytest.approx(5 + 1)]  # until its accept_by (5 s), plus the clocks' skew
    execution = only_execution(task)
    assert (execution.executor_id, execution.attempt) == (up.pk, 2)
    assert execution.accept_by == clock.now + timedelta(seconds=5)


@pytest.mark.parametrize("answer", [None, {"state": "running", "attempt": 1}, {"state": "finished",
                                                                             "status": "success"}])
def test_an_unanswered_attempt_whose_executor_holds_it_or_cannot_say_stays_there_under_its_lease(
        make_task, make_executor, dispatcher, transport, answer):
    task = make_task(load_balance_strategy="sticky")
    frozen = make_executor(tasks=[task], priority=0)
    make_executor(tasks=[task], priority=1)
    transport.answers[frozen.base_url] = Unreachable("TimeoutError")  # accepted, then froze before answering?
    fire_due(T0)
    if answer is not None:  # else still frozen when asked: unreachable
        [execution_id] = TaskExecution.objects.filter(task=task).values_list("pk", flat=True)
        transport.states[frozen.base_url] = {execution_id: {"execution_id": execution_id, **answer}}
    dispatch(dispatcher, T0)
    execution = only_execution(task)
    assert len(posts(transport)) == 1
    assert (execution.status, execution.executor_id, execution.attempt) == (ExecutionStatus.RUNNING, frozen.pk, 1)


def test_an_executor_that_answered_or_was_never_reached_is_not_waited_for(make_task, make_executor, dispatcher,
                                                                       transport):
    task = make_task(load_balance_strategy="sticky")
    refused = make_executor(tasks=[task], priority=0)
    down = make_executor(tasks=[task], priority=1)
    make_executor(tasks=[task], priority=2)
    transport.answers[refused.base_url] = 409  # e.g. its accept-by had passed
    transport.answers[down.base_url] = Unreachable("ConnectionRefusedError", maybe_received=False)
    fire_due(T0)
    dispatch(dispatcher, T0)
    assert [payload["attempt"] for payload in posts(transport)] == [1, 2, 3] and transport.slept == []


def claimed_ahead(make_task, make_executor, clock, transport, **fields):
    dispatcher = make_dispatcher(clock, transport, stage_ahead=AHEAD, claim_ahead=timedelta(milliseconds=500))
    task = make_task(next_run_time=T0 + timedelta(seconds=1), **fields)
    make_executor(tasks=[task])
    fire_due(T0, ahead=timedelta(seconds=1))
    dispatcher.dispatch_pending(T0)
    dispatcher.dispatch_pending(T0 + timedelta(milliseconds=600))
    assert only_execution(task).status == ExecutionStatus.RUNNING
    return dispatcher, task


def test_a_run_claimed_ahead_and_ended_meanwhile_is_never_posted(make_task, make_executor, clock, transport):
    dispatcher, task = claimed_ahead(make_task, make_executor, clock, transport)
    try:
        TaskExecution.objects.filter(task=task).update(status=ExecutionStatus.TIMEOUT)  # e.g. the sweep, after a stall
        dispatch(dispatcher, T0 + timedelta(seconds=1))
        assert posts(transport) == []
    finally:
        dispatcher.shutdown()


def test_a_run_claimed_ahead_whose_leader_stalled_past_it_follows_its_misfire_policy(
        make_task, make_executor, clock, transport):
    dispatcher, task = claimed_ahead(make_task, make_executor, clock, transport, misfire_policy="skip")
    try:
        clock.now = T0 + timedelta(seconds=12)  # a 10 s stall (a table lock): the accept-by has passed
        dispatch(dispatcher, clock.now)
        dispatch(dispatcher, clock.now)
        execution = only_execution(task)
        assert posts(transport) == [] and execution.status == ExecutionStatus.SKIPPED
        assert "misfire: 1 fire time(s) passed" in execution.logs and "(policy skip)" in execution.logs
    finally:
        dispatcher.shutdown()


@pytest.mark.parametrize(("policy", "outage", "sent"), [
    ("skip", 30, False),
    ("fire_all", 30, True),
    ("fire_once", 30, False),  # its next fire was missed too: firing makes the one run for the window
    ("fire_once", 8, True),  # the next fire is not missed: this run stands for the window
    ("skip", 3, True),  # within the misfire threshold: on time
])
def test_a_run_fired_ahead_that_no_leader_sent_follows_its_misfire_policy(
        make_task, make_executor, clock, transport, policy, outage, sent):
    task = make_task(cron_expression="1 * * * * *", next_run_time=T0 + timedelta(seconds=1),
                     misfire_policy=policy)
    make_executor(tasks=[task])
    fire_due(T0, ahead=AHEAD)  # the run due at T0 + 1 s; then the leader stops
    task.refresh_from_db()
    task.next_run_time = T0 + timedelta(seconds=10)
    task.save()
    clock.now = T0 + timedelta(seconds=1 + outage)  # a new leader starts
    successor = make_dispatcher(clock, transport, stage_ahead=AHEAD)
    try:
        dispatch(successor, clock.now)
    finally:
        successor.shutdown()
    execution = TaskExecution.objects.get(task=task, scheduled_time=T0 + timedelta(seconds=1))
    assert (len(posts(transport)) == 1) is sent
    assert execution.status == (ExecutionStatus.RUNNING if sent else ExecutionStatus.SKIPPED)


def dispatched(make_task, make_executor, dispatcher, **fields):
    task = make_task(**fields)
    executor = make_executor(tasks=[task])
    fire_due(T0)
    dispatch(dispatcher, T0)
    return only_execution(task), executor


def test_an_expired_lease_of_an_unreachable_executor_is_lost_and_retried(make_task, make_executor, dispatcher):
    execution, _ = dispatched(make_task, make_executor, dispatcher, max_retry=1, timeout_seconds=600)
    assert dispatcher.sweep_leases(execution.lease_until) == 0  # not before it has run out
    assert sweep(dispatcher, "sweep_leases", execution.lease_until + timedelta(seconds=1)) == 1
    lost = only_execution_of(execution)
    assert lost.status == ExecutionStatus.FAILED and lost.ended_by_scheduler
    assert "lost: the lease ran out" in lost.logs and "unreachable" in lost.logs
    assert TaskExecution.objects.filter(retry_of=lost, status=ExecutionStatus.PENDING).exists()


def only_execution_of(execution):
    return TaskExecution.objects.get(pk=execution.pk)


def test_an_expired_lease_whose_executor_still_holds_the_run_is_renewed(make_task, make_executor, dispatcher,
                                                                       transport):
    execution, executor = dispatched(make_task, make_executor, dispatcher, timeout_seconds=600)
    transport.states[executor.base_url] = {execution.pk: {"execution_id": execution.pk, "state": "running",
                                                          "attempt": 1}}
    now = execution.lease_until + timedelta(seconds=1)
    sweep(dispatcher, "sweep_leases", now)
    renewed = only_execution_of(execution)
    assert renewed.status == ExecutionStatus.RUNNING and renewed.lease_until == now + timedelta(seconds=15)


def test_an_executor_holding_another_attempt_does_not_hold_this_one(make_task, make_executor, dispatcher, transport):
    execution, executor = dispatched(make_task, make_executor, dispatcher, timeout_seconds=600)
    transport.states[executor.base_url] = {execution.pk: {"execution_id": execution.pk, "state": "running",
                                                          "attempt": 7}}
    sweep(dispatcher, "sweep_leases", execution.lease_until + timedelta(seconds=1))
    assert "it does not hold the run" in only_execution_of(execution).logs


@pytest.mark.parametrize("step", ["sweep_leases", "sweep_timeouts"])
def test_a_result_the_executor_hands_over_when_asked_is_applied(make_task, make_executor, dispatcher, transport,
                                                               step):
    execution, executor = dispatched(make_task, make_executor, dispatcher, timeout_seconds=10)
    end = T0 + timedelta(seconds=3)
    transport.states[executor.base_url] = {execution.pk: {
        "execution_id": execution.pk, "state": "finished", "status": "success", "result": {"n": 1},
        "logs": "done", "end_time": end.isoformat()}}
    sweep(dispatcher, step, T0 + timedelta(seconds=30))
    done = only_execution_of(execution)
    assert (done.status, done.result, done.end_time) == (ExecutionStatus.SUCCESS, {"n": 1}, end)
