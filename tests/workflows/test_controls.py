"""Workflows (#19) with the scheduling controls (#20): a node whose task broadcasts, or runs in replace or queue
mode; a workflow's overlap policy; chains of tasks with controls; the fire key holding both the shard and the
node's key. Executors are the fake transport of tests/scheduling/test_dispatch.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import apply_callback, shards_of
from scheduling.firing import fire_due
from tasks.models import BlackoutCalendar, Task, TaskExecutor
from tests.helpers import assert_error, assert_ok
from tests.scheduling.conftest import FakeClock
from tests.scheduling.fakes import FakeExecutors, dispatch, make_dispatcher
from workflows import services as workflow_services
from workflows.choices import WorkflowRunStatus
from workflows.runs import create_run
from workflows.services import run_cancel, workflow_create, workflow_trigger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def transport():
    return FakeExecutors()


@pytest.fixture
def dispatcher(transport):
    instance = make_dispatcher(FakeClock(timezone.now()), transport)
    yield instance
    instance.shutdown()


@pytest.fixture
def assigned(make_executor):
    """``assigned(task, n)``: n new executors assigned to ``task``."""

    def make(task, n=1):
        executors = [make_executor() for _ in range(n)]
        TaskExecutor.objects.bulk_create([TaskExecutor(task=task, executor=executor) for executor in executors])
        return executors

    return make


def workflow_of(*edges: tuple[str, str], **tasks: Task):
    return workflow_create(data={"name": "wf-" + "-".join(tasks)},
                           nodes=[{"name": name, "task_id": task.pk} for name, task in tasks.items()],
                           edges=[{"parent": parent, "child": child} for parent, child in edges], now=timezone.now())


def soon():
    return timezone.now() + timedelta(seconds=1)


def node_rows(run, name):
    """The node's executions as the run sees them (its shards are not among them)."""
    return list(TaskExecution.objects.filter(workflow_run=run, node_key__endswith=f":{name}").order_by("retry_count"))


def end(execution, status="success", result=None):
    apply_callback(execution_id=execution.pk, status=status, result=result, logs=None, end_time=None,
                   now=timezone.now())


# --- broadcast nodes: supported --------------------------------------------------------------------------

def test_a_broadcast_node_fans_out_and_its_children_start_when_every_shard_ended(make_task, assigned, dispatcher,
                                                                                 transport):
    shout, then = make_task(load_balance_strategy="broadcast", max_retry=0), make_task(max_retry=0)
    executors = assigned(shout, 2)
    assigned(then)
    run = workflow_trigger(workflow_id=workflow_of(("shout", "then"), shout=shout, then=then).pk,
                           parameters={"day": "2030-01-01"}, now=timezone.now())
    dispatch(dispatcher, soon())
    [node] = node_rows(run, "shout")
    shards = list(shards_of(node).order_by("shard"))
    assert node.status == ExecutionStatus.RUNNING and node.shard_total == 2 and node.executor_id is None
    assert [(s.node_key, s.workflow_run_id, s.executor_id) for s in shards] == [
        (node.node_key, None, executor.pk) for executor in executors]
    assert all(shard.parent_id == node.pk for shard in shards)
    sent = sorted((p["shard_index"], p["shard_total"], p["workflow_run_id"], p["workflow_node"], p["parameters"])
                  for _, p in transport.calls)
    assert sent == [(i, 2, run.pk, "shout", {"day": "2030-01-01"}) for i in range(2)]

    end(shards[0], result={"rows": 1})
    assert not node_rows(run, "then"), "one shard still runs"
    end(shards[1])
    node.refresh_from_db()
    assert node.status == ExecutionStatus.SUCCESS and "2/2 shards succeeded" in node.logs
    [child] = node_rows(run, "then")
    assert child.status == ExecutionStatus.PENDING and child.shard == 0 and child.shard_total is None
    dispatch(dispatcher, soon())
    assert transport.calls[-1][1]["parent_results"] == {"shout": {"status": "success", "result": None}}
    end(child)
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.SUCCESS


def test_a_broadcast_node_whose_shard_fails_fails_the_node_and_the_run(make_task, assigned, dispatcher):
    shout, then = make_task(load_balance_strategy="broadcast", max_retry=0), make_task()
    assigned(shout, 2)
    run = workflow_trigger(workflow_id=workflow_of(("shout", "then"), shout=shout, then=then).pk, parameters=None,
                           now=timezone.now())
    dispatch(dispatcher, soon())
    [node] = node_rows(run, "shout")
    first, second = shards_of(node).order_by("shard")
    end(first, "failed")
    end(second)
    node.refresh_from_db()
    run.refresh_from_db()
    assert node.status == ExecutionStatus.FAILED and "not succeeded: shard_index 0" in node.logs
    assert [row.status for row in node_rows(run, "then")] == [ExecutionStatus.SKIPPED]
    assert run.status == WorkflowRunStatus.FAILED


def test_cancelling_the_workflow_run_stops_a_broadcast_nodes_shards(make_task, assigned, dispatcher, monkeypatch):
    told = []
    monkeypatch.setattr(workflow_services, "notify_executor_stop", told.append)
    shout = make_task(load_balance_strategy="broadcast")
    assigned(shout, 2)
    run = workflow_trigger(workflow_id=workflow_of(shout=shout).pk, parameters=None, now=timezone.now())
    dispatch(dispatcher, soon())
    [node] = node_rows(run, "shout")
    shards = list(shards_of(node))
    run_cancel(run_id=run.pk, now=timezone.now())
    assert set(TaskExecution.objects.filter(task=shout).values_list("status", flat=True)) == {"cancelled"}
    assert sorted(told) == sorted(shard.pk for shard in shards)  # the run itself was never sent anywhere


def test_a_broadcast_nodes_shards_are_apart_from_its_tasks_own_fire_at_the_same_time(make_task, assigned,
                                                                                     dispatcher):
    shout = make_task(load_balance_strategy="broadcast")
    assigned(shout, 2)
    run = workflow_trigger(workflow_id=workflow_of(shout=shout).pk, parameters=None, now=timezone.now())
    # The task's own run with the same (task, scheduled time, trigger): only the node's key tells them apart.
    own = TaskExecution.objects.create(task=shout, scheduled_time=run.scheduled_time, trigger_type=run.trigger_type,
                                       status=ExecutionStatus.PENDING, dispatch_after=run.scheduled_time)
    dispatch(dispatcher, soon())
    [node] = node_rows(run, "shout")
    own.refresh_from_db()
    assert node.shard_total == own.shard_total == 2
    assert {shard.node_key for shard in shards_of(node)} == {node.node_key} and shards_of(node).count() == 2
    assert {shard.node_key for shard in shards_of(own)} == {""} and shards_of(own).count() == 2
    for shard in shards_of(own):
        end(shard)
    own.refresh_from_db()
    node.refresh_from_db()
    assert own.status == ExecutionStatus.SUCCESS and node.status == ExecutionStatus.RUNNING


def test_the_fire_key_holds_both_the_shard_and_the_nodes_key(make_task):
    task = make_task()
    at = timezone.now()

    def insert(**fields):
        with transaction.atomic():
            TaskExecution.objects.create(task=task, scheduled_time=at, trigger_type="scheduled", **fields)

    insert()
    insert(shard=1)
    insert(node_key="run:1:a")
    insert(node_key="run:1:a", shard=1)
    insert(node_key="run:1:b", shard=1)
    for fields in ({}, {"shard": 1}, {"node_key": "run:1:a"}, {"node_key": "run:1:a", "shard": 1}):
        with pytest.raises(IntegrityError):
            insert(**fields)


# --- replace and queue: a node waits its turn; a replace fire leaves node runs alone -----------------------

@pytest.mark.parametrize("mode", ["sequential", "queue", "replace"])
def test_a_scheduled_runs_node_waits_for_its_tasks_run_in_progress(make_task, assigned, dispatcher, transport,
                                                                   mode):
    task = make_task(execution_mode=mode)
    assigned(task)
    workflow = workflow_of(only=task)
    own = TaskExecution.objects.create(task=task, scheduled_time=timezone.now() - timedelta(minutes=1),
                                       status=ExecutionStatus.RUNNING, start_time=timezone.now())
    run = create_run(workflow, scheduled_time=timezone.now(), trigger_type="scheduled", now=timezone.now())
    dispatch(dispatcher, soon())
    assert not transport.calls, "one at a time"
    end(own)
    dispatch(dispatcher, soon())
    assert [p["workflow_run_id"] for _, p in transport.calls] == [run.pk]


def test_a_replace_fire_does_not_cancel_its_tasks_run_as_a_workflow_node(make_task, assigned, dispatcher,
                                                                         transport):
    task = make_task(execution_mode="replace", cron_expression="* * * * * *")
    assigned(task)
    run = workflow_trigger(workflow_id=workflow_of(only=task).pk, parameters=None, now=timezone.now())
    dispatch(dispatcher, soon())
    [node] = node_rows(run, "only")
    assert node.status == ExecutionStatus.RUNNING
    fire_at = timezone.now().replace(microsecond=0) + timedelta(seconds=2)  # the task's own schedule fires
    Task.objects.filter(pk=task.pk).update(next_run_time=fire_at)
    replaced = []
    fire_due(fire_at, on_replaced=replaced.extend)
    node.refresh_from_db()
    assert node.status == ExecutionStatus.RUNNING and replaced[0].stopping == []
    fired = TaskExecution.objects.get(task=task, node_key="")
    assert fired.status == ExecutionStatus.PENDING
    TaskExecution.objects.filter(pk=fired.pk).update(dispatch_after=timezone.now())  # past the stop hold
    dispatch(dispatcher, soon())
    assert len(transport.calls) == 1, "the fire waits for the node's run, as one-at-a-time modes do"
    end(node)
    dispatch(dispatcher, soon())
    assert [p["execution_id"] for _, p in transport.calls] == [node.pk, fired.pk]
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.SUCCESS


# --- what a workflow refuses, through the API ---------------------------------------------------------------

@pytest.mark.parametrize("policy", ["replace", "queue"])
def test_a_workflow_overlap_policy_of_replace_or_queue_is_refused(api, make_task, policy):
    body = {"name": "wf", "nodes": [{"name": "a", "task_id": make_task().pk}], "overlap_policy": policy}
    status, error = api.post("/api/v1/workflows", body)
    assert_error(status, error, 400)
    assert "not a workflow overlap policy" in str(error["details"])


def test_a_node_may_run_a_broadcast_replace_or_queue_task(api, make_task):
    nodes = [{"name": mode, "task_id": make_task(execution_mode=mode).pk} for mode in ("replace", "queue")]
    nodes.append({"name": "shout", "task_id": make_task(load_balance_strategy="broadcast").pk})
    assert_ok(*api.post("/api/v1/workflows", {"name": "wf", "nodes": nodes}), http_status=201,
              message="工作流创建成功")


def scheduled_task(make_task, **fields):
    task = make_task(cron_expression="0 0 2 * * *", **fields)
    task.next_run_time = task.schedule().next_after(task.created_at)
    task.save()
    return task


def test_a_chain_from_a_queue_task_is_sequential(api, make_task):
    first, then = scheduled_task(make_task, execution_mode="queue"), make_task()
    chain = assert_ok(*api.post("/api/v1/workflows/chain", {"task_ids": [first.pk, then.pk]}), http_status=201,
                      message="工作流创建成功")
    assert chain["overlap_policy"] == "sequential"


@pytest.mark.parametrize("control", ["end_at", "jitter_seconds", "calendars"])
def test_a_chain_refuses_to_take_a_schedule_whose_controls_a_workflow_lacks(api, make_task, control):
    first, then = scheduled_task(make_task), make_task()
    if control == "calendars":
        first.calendars.add(BlackoutCalendar.objects.create(name="holidays", entries=["2030-12-25"]))
    else:
        Task.objects.filter(pk=first.pk).update(**{control: timezone.now() + timedelta(days=9) if control == "end_at"
                                                   else 30})
    status, error = api.post("/api/v1/workflows/chain", {"task_ids": [first.pk, then.pk]})
    assert_error(status, error, 400)
    assert control in error["error"]
    first.refresh_from_db()
    assert first.status == "active"
