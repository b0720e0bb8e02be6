"""Writes to workflows and their runs. Each service is one transaction, takes ``now`` and raises DomainError.

A workflow's graph is checked as a whole before anything is written (``core.workflows.dag_problem``, and
every node's task must exist and not be deleted), so a refused save leaves no half-written graph.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from core.cron import CronError
from core.policy import FireAction, FirePlan, decide_fire
from core.states import ExecutionStatus
from core.workflows import Edge, ProblemKind, dag_problem
from executions.choices import TriggerType
from executions.models import TaskExecution
from executions.services import (
    cancel_run,
    notify_executor_stop,
    retried_on_deadlock,
    shards_of,
    transition_many,
)
from scheduler_project.errors import DomainError, ErrorCode
from tasks.choices import ONE_SHOT_TYPES, TaskStatus
from tasks.models import Task
from tasks.services import check_schedule_fields, next_fire_after, task_pause
from workflows.choices import ACTIVE_RUN_STATUSES, EdgeCondition, OverlapPolicy, WorkflowRunStatus, WorkflowStatus
from workflows.models import MAX_NODES, Workflow, WorkflowEdge, WorkflowNode, WorkflowRun
from workflows.runs import begin, create_run, snapshot, start_next_waiting

SCHEDULE_FIELDS = {"schedule_type", "cron_expression", "interval_seconds", "start_at", "run_at", "timezone",
                    "status"}
_PROBLEM_CODES = {ProblemKind.CYCLE: ErrorCode.WORKFLOW_CYCLE,
                  ProblemKind.UNREACHABLE: ErrorCode.WORKFLOW_UNREACHABLE_NODE}


# --- workflows -------------------------------------------------------------------------------------------

def check_graph(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
    """Refuse a graph that cannot run: too many nodes, a repeated name, a cycle, an edge to an unknown
    node, a node that can never run, or a node whose task is missing or deleted."""
    if len(nodes) > MAX_NODES:
        raise DomainError(ErrorCode.WORKFLOW_INVALID_GRAPH, f"a workflow has at most {MAX_NODES} nodes",
                          {"nodes": len(nodes), "max": MAX_NODES})
    names = [node["name"] for node in nodes]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DomainError(ErrorCode.WORKFLOW_INVALID_GRAPH, f"node names must be unique: {', '.join(repeated)}",
                          {"names": repeated})
    problem = dag_problem(names, [_edge(edge) for edge in edges])
    if problem is not None:
        code = _PROBLEM_CODES.get(problem.kind, ErrorCode.WORKFLOW_INVALID_GRAPH)
        raise DomainError(code, problem.error, {"problem": problem.kind.value, **problem.details})
    task_ids = {node["task_id"] for node in nodes}
    usable = set(Task.objects.filter(pk__in=task_ids).exclude(status=TaskStatus.DELETED).values_list("pk", flat=True))
    unusable = [node for node in nodes if node["task_id"] not in usable]
    if unusable:
        node = unusable[0]
        raise DomainError(ErrorCode.WORKFLOW_TASK_UNAVAILABLE,
                          f"node '{node['name']}': task '{node['task_id']}' does not exist or is deleted",
                          {"node": node["name"], "task_id": node["task_id"]})


def _edge(edge: dict[str, Any]) -> Edge:
    return Edge(edge["parent"], edge["child"], edge.get("condition") or EdgeCondition.ON_SUCCESS)


def _check_schedule(workflow: Workflow, now: datetime, *, run_at_changed: bool) -> None:
    if not workflow.schedule_type:
        return
    check_schedule_fields(workflow, now, run_at_changed=run_at_changed)
    try:
        workflow.schedule().next_after(now)
    except (CronError, ValueError) as exc:
        raise DomainError(ErrorCode.INVALID_CRON, str(exc), {"field": "cron_expression"}) from None


def _next_fire(workflow: Workflow, now: datetime) -> datetime | None:
    if not workflow.schedule_type:
        return None
    return next_fire_after(workflow, now)


def _save_graph(workflow: Workflow, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
    """Replace the graph, keeping the rows (and so the history links) of nodes whose name stays."""
    existing = {node.name: node for node in workflow.nodes.all()}
    kept = {}
    for position, data in enumerate(nodes):
        node = existing.get(data["name"]) or WorkflowNode(workflow=workflow, name=data["name"])
        node.task_id, node.parameters, node.position = data["task_id"], data.get("parameters") or {}, position
        node.save()
        kept[node.name] = node
    workflow.edges.all().delete()
    WorkflowNode.objects.filter(workflow=workflow).exclude(pk__in=[n.pk for n in kept.values()]).delete()
    WorkflowEdge.objects.bulk_create([
        WorkflowEdge(workflow=workflow, parent=kept[edge["parent"]], child=kept[edge["child"]],
                     condition=edge.get("condition") or EdgeCondition.ON_SUCCESS)
        for edge in edges
    ])


def _save_with_unique_name(workflow: Workflow, **save_kwargs: Any) -> None:
    clash = Workflow.objects.filter(name=workflow.name).exclude(pk=workflow.pk).values_list("pk", flat=True).first()
    if clash is None:
        try:
            with transaction.atomic():
                workflow.save(**save_kwargs)
            return
        except IntegrityError:
            clash = Workflow.objects.filter(name=workflow.name).exclude(pk=workflow.pk).values_list(
                "pk", flat=True).first()
            if clash is None:
                raise
    raise DomainError(ErrorCode.WORKFLOW_NAME_EXISTS, f"a workflow named '{workflow.name}' already exists",
                      {"field": "name", "value": workflow.name, "existing_workflow_id": clash})


@transaction.atomic
def workflow_create(*, data: dict[str, Any], nodes: list[dict], edges: list[dict], now: datetime) -> Workflow:
    """A new workflow with its graph; scheduled from ``now`` when it has a schedule and is active."""
    check_graph(nodes, edges)
    workflow = Workflow(**data)
    _check_schedule(workflow, now, run_at_changed=True)
    workflow.next_run_time = _next_fire(workflow, now)
    _save_with_unique_name(workflow, force_insert=True)
    _save_graph(workflow, nodes, edges)
    return workflow


def _locked(workflow_id: str) -> Workflow:
    try:
        return Workflow.objects.select_for_update().get(pk=workflow_id)
    except Workflow.DoesNotExist:
        raise DomainError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow '{workflow_id}' does not exist") from None


@retried_on_deadlock
@transaction.atomic
def workflow_update(*, workflow_id: str, data: dict[str, Any], nodes: list[dict] | None = None,
                    edges: list[dict] | None = None, now: datetime) -> Workflow:
    """Change fields and/or the graph (``nodes`` replace the nodes, ``edges`` the edges; the one not given
    stays). Runs in progress keep the graph they started with."""
    workflow = _locked(workflow_id)
    if nodes is not None or edges is not None:
        current = snapshot(workflow)
        nodes = current["nodes"] if nodes is None else nodes
        edges = current["edges"] if edges is None else edges
        check_graph(nodes, edges)
    reschedule = any(field in SCHEDULE_FIELDS and value != getattr(workflow, field) for field, value in data.items())
    run_at_changed = "run_at" in data and data["run_at"] != workflow.run_at
    for field, value in data.items():
        setattr(workflow, field, value)
    _check_schedule(workflow, now, run_at_changed=run_at_changed)
    if reschedule:
        workflow.finished_at = None
        workflow.next_run_time = _next_fire(workflow, now)
    _save_with_unique_name(workflow)
    if nodes is not None:
        _save_graph(workflow, nodes, edges)
    return workflow


@transaction.atomic
def workflow_saved_elsewhere(*, workflow_id: str, now: datetime, reschedule: bool) -> Workflow:
    """For a workflow whose rows were written directly (the console's inlines), in that transaction: the
    same checks as ``workflow_update`` on what was written (a refusal rolls it all back), and the next fire
    recomputed when the schedule changed."""
    workflow = _locked(workflow_id)
    graph = snapshot(workflow)
    check_graph(graph["nodes"], graph["edges"])
    _check_schedule(workflow, now, run_at_changed=reschedule)
    if reschedule:
        workflow.finished_at = None
        workflow.next_run_time = _next_fire(workflow, now)
        workflow.save(update_fields=["finished_at", "next_run_time", "updated_at"])
    return workflow


@transaction.atomic
def workflow_delete(*, workflow_id: str) -> None:
    """Delete a workflow and its runs' records; its node executions stay in the history. Refused while a
    run is pending or running (cancel it first)."""
    workflow = _locked(workflow_id)
    if workflow.runs.filter(status__in=ACTIVE_RUN_STATUSES).exists():
        raise DomainError(ErrorCode.WORKFLOW_STATE_FORBIDS, "the workflow has a run in progress: cancel it first",
                          {"workflow_id": workflow.pk})
    workflow.delete()


# --- runs ------------------------------------------------------------------------------------------------

@retried_on_deadlock
@transaction.atomic
def workflow_trigger(*, workflow_id: str, parameters: dict[str, Any] | None, now: datetime) -> WorkflowRun:
    """A run now, whatever the overlap policy (as a task's manual trigger bypasses its execution mode);
    ``parameters`` override every node's."""
    workflow = _locked(workflow_id)
    scheduled = now
    for _ in range(5):
        try:
            return create_run(workflow, scheduled_time=scheduled, trigger_type=TriggerType.MANUAL,
                              parameters=parameters, now=now)
        except IntegrityError:
            scheduled += timedelta(microseconds=1)  # two triggers in one microsecond share the fire key
    raise DomainError(ErrorCode.CONFLICT, "too many simultaneous triggers of this workflow; try again")


def _run(run_id: str) -> WorkflowRun:
    try:
        return WorkflowRun.objects.select_for_update().get(pk=run_id)
    except WorkflowRun.DoesNotExist:
        raise DomainError(ErrorCode.WORKFLOW_RUN_NOT_FOUND, f"workflow run '{run_id}' does not exist") from None


def _forbid_run(run: WorkflowRun, action: str, allowed: set[str]) -> DomainError:
    return DomainError(ErrorCode.WORKFLOW_RUN_STATE_FORBIDS,
                       f"cannot {action} a workflow run whose status is '{run.status}'",
                       {"workflow_run_id": run.pk, "status": run.status, "allowed": sorted(allowed)})


@retried_on_deadlock
@transaction.atomic
def run_cancel(*, run_id: str, now: datetime) -> WorkflowRun:
    """Cancel a pending or running run: its waiting nodes are withdrawn, its running ones stopped (their
    executors told after commit), and no node starts after this.

    Lock order: the active shards of its broadcast nodes, then the run's active executions (a node ending
    right now finishes its advance), then the run: the order in which a shard's end takes its broadcast run
    and a node's end takes its run, so they never deadlock.
    """
    active = [ExecutionStatus.PENDING, ExecutionStatus.RUNNING]
    for node in TaskExecution.objects.filter(workflow_run_id=run_id, status=ExecutionStatus.RUNNING,
                                             shard_total__isnull=False):
        list(shards_of(node).select_for_update().filter(status__in=active).order_by("pk").values_list("pk", flat=True))
    list(TaskExecution.objects.select_for_update().filter(workflow_run_id=run_id, status__in=active).order_by("pk")
         .values_list("pk", flat=True))
    run = _run(run_id)
    if run.status not in ACTIVE_RUN_STATUSES:
        raise _forbid_run(run, "cancel", set(ACTIVE_RUN_STATUSES))
    run.status, run.ended_at, run.reason = WorkflowRunStatus.CANCELLED, now, "cancelled by operator"
    run.save(update_fields=["status", "ended_at", "reason"])
    nodes = TaskExecution.objects.filter(workflow_run=run)
    pending = list(nodes.filter(status=ExecutionStatus.PENDING).values_list("pk", flat=True))
    if pending:
        transition_many(pending, ExecutionStatus.CANCELLED, expected=ExecutionStatus.PENDING, end_time=now,
                        logs="cancelled before dispatch: workflow run cancelled")
    for execution in nodes.filter(status=ExecutionStatus.RUNNING):
        # The stop path: a broadcast node's executor-side runs are its shards.
        stopping = cancel_run(execution, now=now, reason="stopped: workflow run cancelled")
        if stopping:
            transaction.on_commit(lambda pks=stopping: [notify_executor_stop(pk) for pk in pks])
    start_next_waiting(run.workflow_id, now=now)
    return run


@retried_on_deadlock
@transaction.atomic
def run_rerun(*, run_id: str, now: datetime) -> WorkflowRun:
    """Run a failed run again from its failures: a new round in which the failed nodes start again and the
    skipped ones are decided anew; nodes that succeeded keep their results."""
    run = _run(run_id)
    if run.status != WorkflowRunStatus.FAILED:
        raise _forbid_run(run, "re-run", {WorkflowRunStatus.FAILED})
    run.round += 1
    run.ended_at, run.reason = None, ""
    run.save(update_fields=["round", "ended_at", "reason"])
    begin(run, now=now)
    return run


# --- firing: called by the engine's step (scheduling.workflow_firing) -------------------------------------

def fire_workflow(workflow: Workflow, plan: FirePlan, note: str, *, now: datetime) -> int:
    """Record one due workflow's plan, in one transaction: the compare-and-set on the next_run_time read
    (an edit or another leader wins), then a run per planned time through the overlap policy. Returns the
    runs written (0 when the compare-and-set lost)."""
    finishes = plan.next_run_time is None and workflow.schedule_type in ONE_SHOT_TYPES
    with transaction.atomic():
        moved = Workflow.objects.filter(pk=workflow.pk, status=WorkflowStatus.ACTIVE,
                                        next_run_time=workflow.next_run_time).update(
            next_run_time=plan.next_run_time, **({"finished_at": now} if finishes else {}))
        if not moved:
            return 0
        for scheduled in plan.skip:
            create_run(workflow, scheduled_time=scheduled, trigger_type=TriggerType.SCHEDULED, now=now,
                       status=WorkflowRunStatus.SKIPPED, reason=note)
        for scheduled in plan.run:
            status, reason = _overlap(workflow)
            create_run(workflow, scheduled_time=scheduled, trigger_type=TriggerType.SCHEDULED, now=now, status=status,
                       reason="\n".join(filter(None, [note, reason])))
    return len(plan.skip) + len(plan.run)


def _overlap(workflow: Workflow) -> tuple[str, str]:
    """The overlap policy applied to a new scheduled run: (its status, why)."""
    running = workflow.runs.filter(status=WorkflowRunStatus.RUNNING).count()
    waiting = workflow.runs.filter(status=WorkflowRunStatus.PENDING).count()
    decision = decide_fire(workflow.overlap_policy, running=running, waiting=waiting)
    if decision.action is FireAction.SKIP:
        return WorkflowRunStatus.SKIPPED, decision.reason
    if workflow.overlap_policy == OverlapPolicy.SEQUENTIAL and running + waiting:
        return WorkflowRunStatus.PENDING, "waiting for the previous run"
    return WorkflowRunStatus.RUNNING, ""


def park_broken(workflow: Workflow, *, now: datetime, retry: timedelta) -> None:
    Workflow.objects.filter(pk=workflow.pk, next_run_time=workflow.next_run_time).update(next_run_time=now + retry)


# --- simple chains: "on success of task A, run task X" ----------------------------------------------------

_NODE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CHAIN_SCHEDULE = ("schedule_type", "cron_expression", "interval_seconds", "start_at", "run_at", "timezone",
                   "misfire_policy")


def chain_node_name(position: int, task: Task) -> str:
    return f"{position}.{_NODE_NAME_UNSAFE.sub('_', task.name)}"[:64]


@transaction.atomic
def chain_create(*, task_ids: list[str], condition: str = EdgeCondition.ON_SUCCESS, name: str | None = None,
                 now: datetime) -> Workflow:
    """A chain as a workflow of its tasks in a line (XXL-Job's child tasks, one mechanism for all): each
    runs after the one before it ended as ``condition`` says. The first task's schedule moves to the
    workflow and the task is paused, so the first task does not also run on its own. Its execution mode
    becomes the workflow's overlap policy (``replace`` and ``queue``, which workflows do not have, become
    ``sequential``); a schedule with an end, blackout calendars or jitter is refused, as a workflow's
    schedule has none of them and they would be lost."""
    found = {task.pk: task for task in Task.objects.select_for_update().filter(pk__in=task_ids)}
    missing = [task_id for task_id in task_ids if task_id not in found]
    if missing:
        raise DomainError(ErrorCode.WORKFLOW_TASK_UNAVAILABLE, f"task '{missing[0]}' does not exist",
                          {"task_id": missing[0]})
    tasks = [found[task_id] for task_id in task_ids]
    first = tasks[0]
    nodes = [{"name": chain_node_name(i, task), "task_id": task.pk} for i, task in enumerate(tasks, start=1)]
    edges = [{"parent": a["name"], "child": b["name"], "condition": condition} for a, b in zip(nodes, nodes[1:],
                                                                                                   strict=False)]
    takes_schedule = first.status == TaskStatus.ACTIVE and first.next_run_time is not None
    if takes_schedule:
        _check_schedule_movable(first)
    overlap = first.execution_mode if first.execution_mode in OverlapPolicy.values else OverlapPolicy.SEQUENTIAL
    data = {"name": name or " → ".join(task.name for task in tasks)[:255],
            "overlap_policy": overlap,
            "description": f"chain from task '{first.name}'" + (", whose schedule it took over" if takes_schedule
                                                                 else "")}
    if takes_schedule:
        data |= {field: getattr(first, field) for field in _CHAIN_SCHEDULE}
    workflow = workflow_create(data=data, nodes=nodes, edges=edges, now=now)
    if takes_schedule:
        task_pause(task_id=first.pk, now=now)
    return workflow


def _check_schedule_movable(task: Task) -> None:
    """Refuse to move a schedule whose controls a workflow's schedule cannot carry (issue #20's window end,
    blackout calendars and jitter): the chain would fire where the task did not."""
    kept = [name for name, used in (("end_at", task.end_at is not None), ("jitter_seconds", bool(task.jitter_seconds)),
                                    ("calendars", task.calendars.exists())) if used]
    if kept:
        raise DomainError.invalid(
            "task_ids", f"the first task's schedule uses {', '.join(kept)}, which a workflow's schedule does not "
            "have: remove them from the task, or pause it and give the workflow a schedule of its own",
            "schedule_not_movable")


# --- retention ---------------------------------------------------------------------------------------------

FINAL_RUN_STATUSES = [WorkflowRunStatus.SUCCESS, WorkflowRunStatus.FAILED, WorkflowRunStatus.CANCELLED,
                      WorkflowRunStatus.SKIPPED]


def purge_runs(*, older_than: datetime, batch_size: int) -> int:
    """Delete ended workflow runs scheduled before ``older_than`` (as execution history ages out, by the
    same retention), ``batch_size`` at a time, each batch its own transaction. Their node executions that
    remain lose the link (SET_NULL). Returns how many runs went."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(WorkflowRun.objects.filter(status__in=FINAL_RUN_STATUSES, scheduled_time__lt=older_than)
                       .order_by("scheduled_time").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            WorkflowRun.objects.filter(pk__in=ids, status__in=FINAL_RUN_STATUSES).only("id").delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
