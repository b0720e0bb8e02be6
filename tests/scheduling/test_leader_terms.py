"""Fencing by leadership term: every election increments the lock's term under the lock, and a leader's
writes (fires, claims, timeouts, lost runs, workflow fires and catch-ups, the alert pass's stale-node judgement)
commit only while its term is the current one. Two nodes whose locks both answer "held" stand for a leader that
lost its lock without knowing yet (frozen, or its check raced the server): the deposed one's writes are refused
by the database and it steps down."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduling.engine import SchedulerNode
from scheduling.firing import fire_due
from scheduling.leader import Deposed
from scheduling.models import LeaderTerm, SchedulerInstance
from scheduling.workflow_firing import fire_due_workflows
from tasks.models import Task
from tasks.services import task_delete
from tests.scheduling.conftest import T0
from tests.scheduling.test_engine_tick import FakeLock
from workflows.choices import WorkflowRunStatus
from workflows.models import Workflow, WorkflowRun
from workflows.services import workflow_create, workflow_trigger

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


@pytest.mark.parametrize("sweep", ["sweep_timeouts", "sweep_leases"])
def test_a_deposed_leaders_sweeps_end_nothing(nodes, make_task, clock, sweep, caplog):
    a, b = nodes
    task = make_task(timeout_seconds=1)
    run = TaskExecution.objects.create(task=task, scheduled_time=T0, status=ExecutionStatus.RUNNING,
                                       start_time=T0, deadline=T0, lease_until=T0)
    elect(a)
    elect(b)

    assert getattr(a.dispatcher, sweep)(clock.advance(minutes=5)) == 1  # found; settled on a worker, refused
    a.dispatcher.pool.shutdown(wait=True)

    run.refresh_from_db()
    assert run.status == ExecutionStatus.RUNNING
    assert f"execution {run.pk} left to the new leader: term 1 is over" in caplog.text


def two_node_workflow(make_task, **fields) -> Workflow:
    nodes = [{"name": name, "task_id": make_task(max_retry=0).pk} for name in "ab"]
    return workflow_create(data={"name": "fenced", **fields}, nodes=nodes,
                           edges=[{"parent": "a", "child": "b", "condition": "on_success"}], now=timezone.now())


def test_a_deposed_leaders_workflow_fire_is_refused(nodes, make_task):
    a, b = nodes
    workflow = two_node_workflow(make_task, schedule_type="interval", interval_seconds=60)
    due = workflow.next_run_time
    elect(a)
    elect(b)

    with pytest.raises(Deposed):
        fire_due_workflows(due, fence=a.fence)

    assert not WorkflowRun.objects.exists() and Workflow.objects.get(pk=workflow.pk).next_run_time == due
    assert fire_due_workflows(due, fence=b.fence) == 1


def test_a_deposed_leaders_catch_up_of_a_stalled_workflow_run_is_refused(nodes, make_task):
    a, b = nodes
    workflow = two_node_workflow(make_task)
    run = workflow_trigger(workflow_id=workflow.pk, parameters=None, now=timezone.now())
    task_delete(task_id=workflow.nodes.get(name="a").task_id, now=timezone.now())  # a's run withdrawn: stalled
    elect(a)
    elect(b)

    with pytest.raises(Deposed):
        fire_due_workflows(timezone.now(), fence=a.fence)

    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.RUNNING
    assert fire_due_workflows(timezone.now(), fence=b.fence) == 1
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.FAILED


def test_a_deposed_leaders_alert_pass_judges_no_node_stale(nodes, caplog):
    from alerts.models import AlertEvent

    a, b = nodes
    SchedulerInstance.objects.create(instance_id="node-c", host="h", port=1)
    SchedulerInstance.objects.filter(instance_id="node-c").update(updated_at=T0 - timedelta(minutes=5))
    elect(a)
    elect(b)

    assert a._alert_pass(T0) == 0

    assert not AlertEvent.objects.filter(condition="node_stale").exists()
    assert "node-a: alert pass stopped, term 1 is over: the current term is 2" in caplog.text
    b._alert_pass(T0)
    assert list(AlertEvent.objects.filter(condition="node_stale").values_list("node", flat=True)) == ["node-c"]
