"""Reads of workflows and their runs, for the API and the console."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from core.workflows import NodeState
from scheduler_project.errors import DomainError, ErrorCode
from workflows.models import Workflow, WorkflowRun
from workflows.runs import latest_executions, node_states


def workflow_list() -> QuerySet[Workflow]:
    return Workflow.objects.prefetch_related("nodes", "edges__parent", "edges__child").order_by("name")


def workflow_get(workflow_id: str) -> Workflow:
    try:
        return workflow_list().get(pk=workflow_id)
    except Workflow.DoesNotExist:
        raise DomainError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow '{workflow_id}' does not exist") from None


def run_list(workflow_id: str, status: str | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.filter(workflow_id=workflow_id).defer("graph")
    return runs.filter(status=status) if status else runs


def run_get(run_id: str) -> WorkflowRun:
    try:
        return WorkflowRun.objects.get(pk=run_id)
    except WorkflowRun.DoesNotExist:
        raise DomainError(ErrorCode.WORKFLOW_RUN_NOT_FOUND, f"workflow run '{run_id}' does not exist") from None


@dataclass(frozen=True)
class RunNode:
    name: str
    task_id: str
    state: str
    execution_id: str | None
    execution_status: str | None
    retry_count: int | None


def run_nodes(run: WorkflowRun) -> list[RunNode]:
    """Each node of the run's graph with its state and latest execution, in the graph's order."""
    latest = latest_executions(run)
    states = node_states(run, latest)
    rows = []
    for node in run.graph.get("nodes", []):
        execution = latest.get(node["name"])
        rows.append(RunNode(
            name=node["name"], task_id=node["task_id"], state=states.get(node["name"], NodeState.WAITING).value,
            execution_id=execution.pk if execution else None,
            execution_status=execution.status if execution else None,
            retry_count=execution.retry_count if execution else None))
    return rows


def run_detail(run_id: str) -> WorkflowRun:
    run = run_get(run_id)
    run.node_rows = run_nodes(run)
    return run
