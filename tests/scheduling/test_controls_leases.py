"""The controls (#20) under the lease and fencing rules: each broadcast shard is an attempt of its own with its
own accept-by and lease, swept alone (a lost shard is retried as the same shard, its run waits for it); a
replace fire stops the runs it replaces through the stop path; a jittered run is staged, claimed ahead and
sent for its dispatch_after; and the leader's writes the controls add (a broadcast fan-out, a fire skipped in
a blackout, a replace fire's cancellations, a queued or backfilled run's claim, a run no executor may take)
commit only within its term."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.controls import jitter
from executions.choices import ExecutionStatus, TriggerType
from executions.models import TaskExecution
from executions.services import apply_callback, shards_of
from scheduler_project.errors import DomainError, ErrorCode
from scheduling.firing import fire_due
from scheduling.leader import Deposed
from tasks.models import BlackoutCalendar, Task
from tasks.services import task_delete
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import Executors, dispatch, make_dispatcher, only_execution, posts, sweep
from tests.scheduling.test_leader_terms import elect, nodes  # noqa: F401 - the two nodes' fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def transport():
    return Executors()


def broadcast(make_task, make_executor, dispatcher, *, executors=3, **fields):
    """A broadcast task fired and fanned out at T0: its run, its shards in order, and their executors."""
    task = make_task(load_balance_strategy="broadcast", timeout_seconds=600, **fields)
    targets = [make_executor(tasks=[task]) for _ in range(executors)]
    fire_due(T0)
    dispatch(dispatcher, T0)
    parent = TaskExecution.objects.get(task=task, shard=0)
    return parent, list(shards_of(parent).order_by("shard")), targets


def holding(transport, executor, *runs):
    """``executor`` answers /status: it holds ``runs`` (their current attempt)."""
    transport.states[executor.base_url] = {
        run.pk: {"execution_id": run.pk, "state": "running", "attempt": run.attempt} for run in runs}


# --- broadcast shards under leases --------------------------------------------------------------------------

def test_each_broadcast_shard_is_an_attempt_with_its_own_accept_by_and_lease(make_task, make_executor, dispatcher,
                                                                             transport):
    parent, shards, targets = broadcast(make_task, make_executor, dispatcher)

    assert [(s.attempt, s.executor_id) for s in shards] == [(1, target.pk) for target in targets]
    assert all(s.accept_by is not None and s.lease_until > s.accept_by for s in shards)
    sent = {payload["execution_id"]: payload for payload in posts(transport)}
    assert set(sent) == {s.pk for s in shards}, "the run itself is never sent"
    assert {(p["attempt"], p["shard_index"], p["shard_total"]) for p in sent.values()} == {(1, i, 3) for i in range(3)}
    # Never dispatched itself: no attempt, accept-by, deadline or lease, so no sweep ever takes it.
    assert (parent.attempt, parent.accept_by, parent.deadline, parent.lease_until) == (0, None, None, None)


def test_a_lost_shard_is_retried_as_the_same_shard_while_the_others_run_on(make_task, make_executor, dispatcher,
                                                                           transport):
    parent, shards, targets = broadcast(make_task, make_executor, dispatcher, max_retry=1)
    lost, *alive = shards
    for shard, target in zip(alive, targets[1:], strict=True):
        holding(transport, target, shard)
    transport.states[targets[0].base_url] = {}  # restarted: it knows nothing of its shard

    now = lost.lease_until + timedelta(seconds=1)
    assert sweep(dispatcher, "sweep_leases", now) == 3, "the three shards, never their run"

    lost.refresh_from_db()
    assert lost.status == ExecutionStatus.FAILED and "lost: the lease ran out" in lost.logs
    retry = shards_of(parent).get(retry_count=1)
    assert (retry.shard, retry.executor_id, retry.status) == (1, targets[0].pk, ExecutionStatus.PENDING)
    for shard in alive:
        shard.refresh_from_db()
        assert shard.status == ExecutionStatus.RUNNING and shard.lease_until > now, "renewed"
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.RUNNING, "waits for the lost shard's retry"


def test_a_late_result_of_a_lost_shard_settles_its_broadcast_run(make_task, make_executor, dispatcher, transport):
    parent, (lost, other), targets = broadcast(make_task, make_executor, dispatcher, executors=2, max_retry=1)
    transport.states[targets[0].base_url] = {}
    holding(transport, targets[1], other)
    sweep(dispatcher, "sweep_leases", lost.lease_until + timedelta(seconds=1))
    apply_callback(execution_id=other.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.RUNNING

    # The lost shard's executor had finished it in time after all: its result comes late, before the retry ran.
    apply_callback(execution_id=lost.pk, status="success", result=None, logs=None,
                   end_time=T0 + timedelta(seconds=5), now=T0 + timedelta(seconds=40))

    assert shards_of(parent).get(retry_count=1).status == ExecutionStatus.CANCELLED
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.SUCCESS and "2/2 shards succeeded" in parent.logs


def test_a_shards_retry_withdrawn_with_its_deleted_task_settles_its_broadcast_run(make_task, make_executor,
                                                                                 dispatcher, transport):
    parent, (lost, other), targets = broadcast(make_task, make_executor, dispatcher, executors=2, max_retry=1)
    transport.states[targets[0].base_url] = {}
    holding(transport, targets[1], other)
    sweep(dispatcher, "sweep_leases", lost.lease_until + timedelta(seconds=1))
    apply_callback(execution_id=other.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    assert shards_of(parent).get(retry_count=1).status == ExecutionStatus.PENDING

    # The task goes while the lost shard's retry waits: the retry is withdrawn, and with it the last shard
    # its run waited for. The run must end (it has no deadline or lease a sweep would find).
    task_delete(task_id=parent.task_id, now=T0 + timedelta(seconds=30))

    assert shards_of(parent).get(retry_count=1).status == ExecutionStatus.CANCELLED
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.CANCELLED and "1/2 shards succeeded" in parent.logs


def test_a_timed_out_shard_ends_alone_and_its_run_with_the_last_shard(make_task, make_executor, dispatcher,
                                                                     transport, monkeypatch):
    stopped = []
    monkeypatch.setattr("scheduling.sweeps.notify_executor_stop", stopped.append)
    parent, (slow, quick), targets = broadcast(make_task, make_executor, dispatcher, executors=2, max_retry=0)
    apply_callback(execution_id=quick.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    holding(transport, targets[0], slow)

    sweep(dispatcher, "sweep_timeouts", T0 + timedelta(minutes=15))

    slow.refresh_from_db()
    parent.refresh_from_db()
    assert slow.status == ExecutionStatus.TIMEOUT
    assert parent.status == ExecutionStatus.FAILED and "not succeeded: shard_index 0" in parent.logs
    assert stopped == [slow.pk], "its executor, which still held it, is told to stop that shard"


def test_a_late_result_of_a_shard_whose_broadcast_run_ended_is_recorded_not_applied(
        make_task, make_executor, dispatcher, transport, monkeypatch):
    monkeypatch.setattr("scheduling.sweeps.notify_executor_stop", lambda execution_id: True)
    parent, (slow, quick), targets = broadcast(make_task, make_executor, dispatcher, executors=2, max_retry=0)
    apply_callback(execution_id=quick.pk, status="success", result=None, logs=None, end_time=None, now=T0)
    holding(transport, targets[0], slow)
    sweep(dispatcher, "sweep_timeouts", T0 + timedelta(minutes=15))
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.FAILED

    # Its success comes late but within its deadline: the run's failure (and its alert) already stand.
    with pytest.raises(DomainError) as refused:
        apply_callback(execution_id=slow.pk, status="success", result=None, logs=None,
                       end_time=slow.deadline - timedelta(seconds=1), now=T0 + timedelta(minutes=16))
    assert refused.value.code == ErrorCode.EXECUTION_STATE_FORBIDS

    slow.refresh_from_db()
    assert slow.status == ExecutionStatus.TIMEOUT and "arrived after its broadcast run had ended" in slow.logs
    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.FAILED


# --- replace goes through the stop path ---------------------------------------------------------------------

def test_a_replace_fire_stops_a_broadcast_run_with_its_shards(make_task, make_executor, dispatcher, transport):
    parent, shards, _ = broadcast(make_task, make_executor, dispatcher, executors=2, execution_mode="replace",
                                  cron_expression="0 * * * * *")
    replacements = []
    Task.objects.filter(pk=parent.task_id).update(next_run_time=T0 + timedelta(minutes=1))

    fire_due(T0 + timedelta(minutes=1), on_replaced=replacements.extend)

    [replacement] = replacements
    assert sorted(replacement.stopping) == sorted(s.pk for s in shards), "the executors' runs: the shards"
    ended = TaskExecution.objects.filter(scheduled_time=T0).values_list("status", "logs")
    assert {status for status, _ in ended} == {ExecutionStatus.CANCELLED}
    assert all("replaced by the fire at 2030-01-01T12:01:00+00:00" in logs for _, logs in ended)
    new = TaskExecution.objects.get(scheduled_time=T0 + timedelta(minutes=1))
    assert new.status == ExecutionStatus.PENDING and new.dispatch_after > T0 + timedelta(minutes=1), "held"


# --- jitter with staging and claiming ahead -----------------------------------------------------------------

def test_a_jittered_run_fired_ahead_is_staged_claimed_and_sent_for_its_dispatch_after(make_task, make_executor,
                                                                                     clock, transport):
    dispatcher = make_dispatcher(clock, transport, stage_ahead=timedelta(seconds=2),
                                 claim_ahead=timedelta(milliseconds=500))
    try:
        task = make_task(id="jittered-1", jitter_seconds=1, cron_expression="1 * * * * *",
                         next_run_time=T0 + timedelta(seconds=1))
        make_executor(tasks=[task])
        scheduled = T0 + timedelta(seconds=1)
        due = scheduled + jitter(task.pk, scheduled, 1)
        assert due - scheduled > timedelta(milliseconds=500)

        fire_due(T0, ahead=timedelta(seconds=1), on_written=lambda rows: dispatcher.stage(rows, T0))
        run = only_execution(task)
        assert (run.scheduled_time, run.dispatch_after) == (scheduled, due)
        assert dispatcher.next_due() == due - timedelta(milliseconds=500), "woken to claim it ahead of its time"

        dispatch(dispatcher, scheduled)  # its scheduled time: not yet its turn
        assert only_execution(task).status == ExecutionStatus.PENDING and posts(transport) == []
        dispatch(dispatcher, due - timedelta(milliseconds=100))  # claimed ahead, for its dispatch_after
        claimed = only_execution(task)
        assert claimed.status == ExecutionStatus.RUNNING and posts(transport) == []
        assert claimed.start_time == due and claimed.accept_by == due + timedelta(seconds=5)

        dispatch(dispatcher, due)
        [payload] = posts(transport)
        assert payload["accept_by"] == (due + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
        assert payload["scheduled_time"] == "2030-01-01T12:00:01Z"
    finally:
        dispatcher.shutdown()


# --- the leader's writes the controls add are fenced --------------------------------------------------------

def test_a_deposed_leaders_broadcast_fan_out_is_refused(nodes, make_task, make_executor):  # noqa: F811
    a, b = nodes
    task = make_task(load_balance_strategy="broadcast")
    make_executor(tasks=[task])
    make_executor(tasks=[task])
    elect(a)
    fire_due(T0)
    elect(b)

    with pytest.raises(Deposed):
        a.dispatcher.dispatch_pending(T0)

    assert list(TaskExecution.objects.values_list("status", "shard_total")) == [(ExecutionStatus.PENDING, None)]


@pytest.mark.parametrize("fields", [{"execution_mode": "queue"}, {"trigger_type": TriggerType.BACKFILL}])
def test_a_deposed_leaders_claim_of_a_queued_or_backfilled_run_is_refused(nodes, make_task, make_executor,  # noqa: F811
                                                                          fields):
    a, b = nodes
    task = make_task(execution_mode=fields.get("execution_mode", "parallel"))
    make_executor(tasks=[task])
    TaskExecution.objects.create(task=task, scheduled_time=T0, dispatch_after=T0,
                                 trigger_type=fields.get("trigger_type", TriggerType.SCHEDULED))
    elect(a)
    elect(b)

    with pytest.raises(Deposed):
        a.dispatcher.dispatch_pending(T0)

    assert list(TaskExecution.objects.values_list("status", "executor_id")) == [(ExecutionStatus.PENDING, None)]


def test_a_deposed_leaders_verdict_on_a_run_no_executor_may_take_is_refused(nodes, make_task,  # noqa: F811
                                                                            make_executor):
    a, b = nodes
    task = make_task(executor_labels={"region": "eu"})
    make_executor(tasks=[task], labels={"region": "us"})
    elect(a)
    fire_due(T0)
    elect(b)

    with pytest.raises(Deposed):
        a.dispatcher.dispatch_pending(T0)

    assert only_execution(task).status == ExecutionStatus.PENDING


@pytest.mark.parametrize("control", ["blackout", "replace"])
def test_a_deposed_leaders_blackout_skip_or_replacement_writes_nothing(nodes, make_task, control):  # noqa: F811
    a, b = nodes
    if control == "blackout":
        task = make_task()
        task.calendars.add(BlackoutCalendar.objects.create(name="all of 2030", entries=["2030-01-01..2030-12-31"]))
    else:
        task = make_task(execution_mode="replace")
        TaskExecution.objects.create(task=task, scheduled_time=T0 - timedelta(seconds=1), dispatch_after=T0,
                                     status=ExecutionStatus.RUNNING)
    elect(a)
    elect(b)

    with pytest.raises(Deposed):
        fire_due(T0, fence=a.fence)

    assert not TaskExecution.objects.filter(scheduled_time=T0).exists()
    assert set(TaskExecution.objects.values_list("status", flat=True)) <= {ExecutionStatus.RUNNING}
    assert fire_due(T0, fence=b.fence) == 1
    expected = ExecutionStatus.SKIPPED if control == "blackout" else ExecutionStatus.PENDING
    assert TaskExecution.objects.get(scheduled_time=T0).status == expected
