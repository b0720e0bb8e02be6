"""Workflow runs, through the services and the single point where node executions end (finish())."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import apply_callbacks, finish, transition_many
from scheduler_project.errors import DomainError, ErrorCode
from scheduling.delivery import execute_payload
from workflows import services
from workflows.choices import WorkflowRunStatus
from workflows.runs import PARENT_RESULT_MAX_BYTES
from workflows.services import run_cancel, run_rerun, workflow_create, workflow_trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_workflow(make_task):
    """``make_workflow("a>b", "a>c:on_failure", nodes="abc")``: a workflow whose nodes each run a task of
    their own (or ``tasks={"a": task}``), with ``a>b`` edges (``:condition`` optional)."""

    def make(*edges: str, nodes: str = "", tasks: dict | None = None, **fields):
        names = list(nodes) or sorted({end for edge in edges for end in edge.split(":")[0].split(">")})
        tasks = tasks or {}
        node_rows = [{"name": name, "task_id": (tasks.get(name) or make_task(max_retry=0)).pk} for name in names]
        edge_rows = []
        for edge in edges:
            pair, _, condition = edge.partition(":")
            parent, child = pair.split(">")
            edge_rows.append({"parent": parent, "child": child, "condition": condition or "on_success"})
        return workflow_create(data={"name": f"wf-{len(names)}-{id(edge_rows)}", **fields}, nodes=node_rows,
                               edges=edge_rows, now=timezone.now())

    return make


def execs(run, name=None):
    rows = TaskExecution.objects.filter(workflow_run=run).order_by("created_at", "retry_count")
    return [row for row in rows if name is None or row.node_key.endswith(f":{name}")]


def status_of(run) -> dict[str, str]:
    """Each node's latest execution status."""
    return {row.node_key.split(":", 2)[2]: row.status for row in execs(run)}


def end(run, name, status=ExecutionStatus.SUCCESS, result=None):
    row = [r for r in execs(run, name) if r.status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)][-1]
    assert finish(row, status, now=timezone.now(), result=result)
    run.refresh_from_db()


def trigger(workflow, parameters=None):
    return workflow_trigger(workflow_id=workflow.pk, parameters=parameters, now=timezone.now())


def test_linear_chain_runs_each_node_after_its_parent(make_workflow):
    run = trigger(make_workflow("a>b", "b>c"))
    assert status_of(run) == {"a": "pending"}
    end(run, "a")
    assert status_of(run) == {"a": "success", "b": "pending"}
    end(run, "b")
    end(run, "c")
    assert run.status == WorkflowRunStatus.SUCCESS and run.ended_at is not None
    assert all(row.workflow_node_id and row.scheduled_time == run.scheduled_time for row in execs(run))


def test_fan_out_starts_siblings_together_and_fan_in_waits_for_every_parent(make_workflow):
    run = trigger(make_workflow("a>b", "a>c", "b>d", "c>d"))
    end(run, "a")
    assert status_of(run) == {"a": "success", "b": "pending", "c": "pending"}
    end(run, "b")
    assert "d" not in status_of(run)
    end(run, "c")
    assert status_of(run)["d"] == "pending"
    end(run, "d")
    assert run.status == WorkflowRunStatus.SUCCESS


def test_fan_in_of_parents_ending_in_one_batch_starts_the_child_once(make_workflow, make_executor):
    run = trigger(make_workflow("a>b", "a>c", "b>d", "c>d"))
    end(run, "a")
    executor = make_executor()
    ids = [execs(run, name)[0].pk for name in "bc"]
    transition_many(ids, ExecutionStatus.RUNNING, expected=ExecutionStatus.PENDING, executor=executor)
    from executions.services import ResultReport
    apply_callbacks(executor_id=executor.pk, reports=[ResultReport(pk, "success") for pk in ids], now=timezone.now())
    assert len(execs(run, "d")) == 1 and execs(run, "d")[0].status == "pending"


def test_on_failure_branch_runs_and_handles_the_failure(make_workflow):
    run = trigger(make_workflow("a>ok", "a>fix:on_failure"))
    end(run, "a", ExecutionStatus.FAILED)
    assert status_of(run) == {"a": "failed", "ok": "skipped", "fix": "pending"}
    end(run, "fix")
    assert run.status == WorkflowRunStatus.SUCCESS


def test_skipped_branch_records_the_reason_and_an_unhandled_failure_fails_the_run(make_workflow):
    run = trigger(make_workflow("a>b", "b>c"))
    end(run, "a", ExecutionStatus.TIMEOUT)
    skipped = execs(run, "b")[0]
    assert skipped.status == "skipped" and "'a'" in skipped.logs and "on_success" in skipped.logs
    assert status_of(run)["c"] == "skipped"
    assert run.status == WorkflowRunStatus.FAILED and "a" in run.reason


def test_a_retry_keeps_the_node_active_and_linked(make_workflow, make_task):
    run = trigger(make_workflow("a>b", tasks={"a": make_task(max_retry=1)}))
    end(run, "a", ExecutionStatus.FAILED)
    first, retry = execs(run, "a")
    assert retry.status == "pending" and retry.retry_count == 1 and retry.node_key == first.node_key
    assert "b" not in status_of(run) and run.status == WorkflowRunStatus.RUNNING
    end(run, "a")
    assert status_of(run)["b"] == "pending"


def test_concurrency_limit_bounds_the_fan_out(make_workflow):
    run = trigger(make_workflow("r>a", "r>b", "r>c", max_parallel_nodes=2))
    end(run, "r")
    assert sorted(status_of(run)) == ["a", "b", "r"]
    end(run, "a")
    assert status_of(run)["c"] == "pending"


def test_cycle_is_refused_and_nothing_is_written(make_task):
    a, b = make_task(), make_task()
    with pytest.raises(DomainError) as refused:
        workflow_create(data={"name": "loop"}, now=timezone.now(),
                        nodes=[{"name": "a", "task_id": a.pk}, {"name": "b", "task_id": b.pk}],
                        edges=[{"parent": "a", "child": "b"}, {"parent": "b", "child": "a"}])
    assert refused.value.code == ErrorCode.WORKFLOW_CYCLE and refused.value.details["cycle"]
    from workflows.models import Workflow
    assert not Workflow.objects.exists()


def test_a_node_of_a_deleted_task_is_refused(make_task):
    gone = make_task(status="deleted")
    with pytest.raises(DomainError) as refused:
        workflow_create(data={"name": "x"}, nodes=[{"name": "a", "task_id": gone.pk}], edges=[], now=timezone.now())
    assert refused.value.code == ErrorCode.WORKFLOW_TASK_UNAVAILABLE


def test_cancel_withdraws_pending_nodes_stops_running_ones_and_starts_nothing_after(make_workflow, make_executor):
    run = trigger(make_workflow("a>c", "b>c"))
    a, b = execs(run, "a")[0], execs(run, "b")[0]
    transition_many([a.pk], ExecutionStatus.RUNNING, expected=ExecutionStatus.PENDING, executor=make_executor())
    run = run_cancel(run_id=run.pk, now=timezone.now())
    a.refresh_from_db()
    b.refresh_from_db()
    assert run.status == WorkflowRunStatus.CANCELLED
    assert a.status == "cancelled" and b.status == "cancelled"
    assert "c" not in status_of(run)
    with pytest.raises(DomainError) as refused:
        run_cancel(run_id=run.pk, now=timezone.now())
    assert refused.value.code == ErrorCode.WORKFLOW_RUN_STATE_FORBIDS


def test_rerun_starts_the_failed_nodes_again_and_keeps_the_successes(make_workflow):
    run = trigger(make_workflow("a>b", "b>c"))
    end(run, "a")
    end(run, "b", ExecutionStatus.FAILED)
    assert run.status == WorkflowRunStatus.FAILED
    run = run_rerun(run_id=run.pk, now=timezone.now())
    assert run.status == WorkflowRunStatus.RUNNING and run.round == 2
    assert len(execs(run, "a")) == 1 and [r.status for r in execs(run, "b")] == ["failed", "pending"]
    end(run, "b")
    end(run, "c")
    assert run.status == WorkflowRunStatus.SUCCESS


def test_only_a_failed_run_can_be_rerun(make_workflow):
    run = trigger(make_workflow("a>b"))
    with pytest.raises(DomainError) as refused:
        run_rerun(run_id=run.pk, now=timezone.now())
    assert refused.value.code == ErrorCode.WORKFLOW_RUN_STATE_FORBIDS


def test_dispatch_carries_the_run_and_the_parents_results_bounded(make_workflow):
    run = trigger(make_workflow("a>c", "b>c"), parameters={"day": "2024-01-01"})
    end(run, "a", result={"rows": 3})
    end(run, "b", result={"blob": "x" * PARENT_RESULT_MAX_BYTES})
    child = execs(run, "c")[0]
    payload = execute_payload(TaskExecution.objects.select_related("task").get(pk=child.pk), attempt=1,
                              accept_by=timezone.now())
    assert payload["workflow_run_id"] == run.pk and payload["workflow_node"] == "c"
    assert payload["parent_results"]["a"] == {"status": "success", "result": {"rows": 3}}
    assert payload["parent_results"]["b"]["result"]["truncated"] is True
    assert payload["parameters"]["day"] == "2024-01-01"


def test_a_plain_execution_dispatch_has_no_workflow_fields(make_execution):
    payload = execute_payload(make_execution(), attempt=1, accept_by=timezone.now())
    assert "workflow_run_id" not in payload


def test_schedule_fires_a_run_once_and_sequential_overlap_waits(make_workflow):
    from scheduling.workflow_firing import fire_due_workflows
    workflow = make_workflow("a>b", schedule_type="interval", interval_seconds=60, overlap_policy="sequential")
    first = workflow.next_run_time
    assert fire_due_workflows(first) == 1 and fire_due_workflows(first) == 0
    assert fire_due_workflows(first + timedelta(seconds=60)) == 1
    runs = list(workflow.runs.order_by("scheduled_time"))
    assert [r.status for r in runs] == ["running", "pending"]
    run = runs[0]
    end(run, "a")
    end(run, "b")
    runs[1].refresh_from_db()
    assert runs[1].status == WorkflowRunStatus.RUNNING and status_of(runs[1]) == {"a": "pending"}


def test_skip_overlap_records_a_skipped_run(make_workflow):
    from scheduling.workflow_firing import fire_due_workflows
    workflow = make_workflow("a>b", schedule_type="interval", interval_seconds=60, overlap_policy="skip")
    first = workflow.next_run_time
    fire_due_workflows(first)
    fire_due_workflows(first + timedelta(seconds=60))
    assert [r.status for r in workflow.runs.order_by("scheduled_time")] == ["running", "skipped"]


def test_delete_is_refused_while_a_run_is_in_progress(make_workflow):
    workflow = make_workflow("a>b")
    trigger(workflow)
    with pytest.raises(DomainError) as refused:
        services.workflow_delete(workflow_id=workflow.pk)
    assert refused.value.code == ErrorCode.WORKFLOW_STATE_FORBIDS


def test_a_node_withdrawn_by_its_task_deletion_is_caught_up_by_the_engine_step(make_workflow, make_task):
    from scheduling.workflow_firing import fire_due_workflows
    from tasks.services import task_delete
    a = make_task(max_retry=0)
    run = trigger(make_workflow("a>b", tasks={"a": a}))
    task_delete(task_id=a.pk, now=timezone.now())  # withdraws a's pending execution (cancelled), no finish()
    assert status_of(run) == {"a": "cancelled"}
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.RUNNING  # nothing advanced it yet
    fire_due_workflows(timezone.now())
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.FAILED and status_of(run)["b"] == "skipped"
    assert fire_due_workflows(timezone.now()) == 0  # nothing stalled any more


def test_ended_runs_past_retention_are_purged_and_running_ones_kept(make_workflow):
    from workflows.services import purge_runs
    workflow = make_workflow("a>b")
    old, running = trigger(workflow), trigger(workflow)
    end(old, "a", ExecutionStatus.FAILED)
    assert old.status == WorkflowRunStatus.FAILED
    later = timezone.now() + timedelta(days=1)
    assert purge_runs(older_than=later, batch_size=1) == 1
    assert list(workflow.runs.values_list("pk", flat=True)) == [running.pk]
    assert TaskExecution.objects.filter(node_key__startswith=old.pk, workflow_run__isnull=True).exists()


class NodeDied(Exception):
    """Stands for the process dying after a parent's status change, before its children are inserted."""


def test_a_node_dying_between_a_parents_end_and_its_childrens_start_leaves_neither(make_workflow, monkeypatch):
    import workflows.runs

    run = trigger(make_workflow("a>b", "a>c"))
    parent = execs(run, "a")[0]
    real_apply = workflows.runs._apply

    def die(*args, **kwargs):
        raise NodeDied

    monkeypatch.setattr(workflows.runs, "_apply", die)
    with pytest.raises(NodeDied):
        finish(parent, ExecutionStatus.SUCCESS, now=timezone.now())
    assert status_of(run) == {"a": "pending"}  # the parent's end rolled back with the children's start
    monkeypatch.setattr(workflows.runs, "_apply", real_apply)
    parent.refresh_from_db()
    assert finish(parent, ExecutionStatus.SUCCESS, now=timezone.now())  # whoever ends it next starts them, once
    assert status_of(run) == {"a": "success", "b": "pending", "c": "pending"}


@pytest.mark.django_db(transaction=True)  # the sweep settles on a worker thread, on its own connection
def test_the_leaders_timeout_sweep_ends_a_node_and_advances_its_run(make_workflow, make_executor):
    from scheduling.dispatch import Dispatcher

    run = trigger(make_workflow("a>b", "a>fix:on_failure"))
    now = timezone.now()
    parent = execs(run, "a")[0]
    transition_many([parent.pk], ExecutionStatus.RUNNING, expected=ExecutionStatus.PENDING,
                    executor=make_executor(), start_time=now - timedelta(minutes=10),
                    deadline=now - timedelta(minutes=5))
    dispatcher = Dispatcher(clock=lambda: now, workers=1)
    try:
        assert dispatcher.sweep_timeouts(now) == 1
    finally:
        dispatcher.shutdown(wait=True)  # the sweep asks the executor and settles on a worker
    assert status_of(run) == {"a": "timeout", "b": "skipped", "fix": "pending"}


def presume(run, name, executor, status=ExecutionStatus.TIMEOUT):
    """The node's pending execution dispatched to ``executor``, then ended by the scheduler's own verdict
    (a timeout or a lost run) with its deadline 5 s ago; returns it."""
    row = [r for r in execs(run, name) if r.status == ExecutionStatus.PENDING][-1]
    now = timezone.now()
    transition_many([row.pk], ExecutionStatus.RUNNING, expected=ExecutionStatus.PENDING, executor=executor,
                    start_time=now - timedelta(seconds=30), deadline=now - timedelta(seconds=5))
    row.refresh_from_db()
    assert finish(row, status, now=now, ended_by_scheduler=True)
    run.refresh_from_db()
    return row


def late_success(row, executor):
    from executions.services import ResultReport
    report = ResultReport(row.pk, "success", {"late": True}, None, row.deadline - timedelta(seconds=1))
    return apply_callbacks(executor_id=executor.pk, reports=[report], now=timezone.now())[0].outcome


def test_a_late_success_after_the_run_moved_on_is_recorded_not_applied(make_workflow, make_executor):
    """The chaos suite's run 'failed with no failed node': the presumed timeout had failed the run, and the
    late success then turned the node green under it."""
    executor = make_executor()
    run = trigger(make_workflow("a>b"))
    row = presume(run, "a", executor)
    assert run.status == WorkflowRunStatus.FAILED and status_of(run) == {"a": "timeout", "b": "skipped"}

    assert late_success(row, executor) == "already_final"

    row.refresh_from_db()
    assert row.status == ExecutionStatus.TIMEOUT and "arrived after its workflow run had moved on" in row.logs
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.FAILED and status_of(run) == {"a": "timeout", "b": "skipped"}


def test_a_late_success_while_the_nodes_retry_waits_succeeds_the_node_and_advances_the_run(
        make_workflow, make_executor, make_task):
    executor = make_executor()
    run = trigger(make_workflow("a>b", tasks={"a": make_task(max_retry=1)}))
    row = presume(run, "a", executor)
    first, retry = execs(run, "a")
    assert retry.status == ExecutionStatus.PENDING and run.status == WorkflowRunStatus.RUNNING

    assert late_success(row, executor) == "applied"

    retry.refresh_from_db()
    assert retry.status == ExecutionStatus.CANCELLED
    run.refresh_from_db()
    assert run.status == WorkflowRunStatus.RUNNING
    assert [r.status for r in execs(run, "b")] == [ExecutionStatus.PENDING]
    end(run, "b")
    assert run.status == WorkflowRunStatus.SUCCESS
