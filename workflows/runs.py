"""A workflow run's progress: starting a run, and advancing it in the transaction that ends one of its nodes.

Leader safety: ``advance_after_node`` runs inside the transaction that records a node execution's final
status (``executions.services._after_ending``, for single and batched results alike). The run's row is
locked first, so two nodes ending at once advance it one after the other, and the second sees the first's
result (READ COMMITTED). The children's executions are inserted in that same transaction, under the
unique fire key with ``node_key``: a process killed between a parent ending and its children starting
loses both or neither, and no node starts twice in one round.

The run's graph is the copy taken when it started (``WorkflowRun.graph``); the decisions themselves are
``core.workflows.advance``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, transaction

from alerts.outbox import record_workflow_run_end
from core.policy import attempt_rank
from core.states import ExecutionStatus
from core.workflows import Advance, Dag, Edge, NodeState, RunStatus
from executions.models import TaskExecution
from tasks.choices import TaskStatus
from tasks.models import Task
from workflows.choices import WorkflowRunStatus
from workflows.models import Workflow, WorkflowRun

logger = logging.getLogger(__name__)
T = TypeVar("T")

NODE_STATE = {
    ExecutionStatus.PENDING: NodeState.ACTIVE,
    ExecutionStatus.RUNNING: NodeState.ACTIVE,
    ExecutionStatus.SUCCESS: NodeState.SUCCEEDED,
    ExecutionStatus.SKIPPED: NodeState.SKIPPED,
    ExecutionStatus.FAILED: NodeState.FAILED,
    ExecutionStatus.TIMEOUT: NodeState.FAILED,
    ExecutionStatus.CANCELLED: NodeState.FAILED,
}


_ACTIVE = [ExecutionStatus.PENDING, ExecutionStatus.RUNNING]


def node_key(run_id: str, round_: int, name: str) -> str:
    return f"{run_id}:{round_}:{name}"


def split_node_key(key: str) -> tuple[int, str]:
    """(round, node name) of a node execution's key."""
    _, round_, name = key.split(":", 2)
    return int(round_), name


def run_id_of(execution: TaskExecution) -> str | None:
    """The workflow run of a node's execution, or of a shard of a broadcast node (which carries the node's
    key but not its run: to the run the node is its one broadcast execution); None outside workflows."""
    if execution.workflow_run_id is not None or not execution.node_key:
        return execution.workflow_run_id
    return execution.node_key.split(":", 1)[0]


def snapshot(workflow: Workflow) -> dict:
    """The graph a run keeps: later edits of the workflow do not reach a run in progress."""
    nodes = list(workflow.nodes.all())
    names = {node.pk: node.name for node in nodes}
    return {
        "nodes": [{"name": node.name, "node_id": node.pk, "task_id": node.task_id, "parameters": node.parameters}
                  for node in nodes],
        "edges": [{"parent": names[edge.parent_id], "child": names[edge.child_id], "condition": edge.condition}
                  for edge in workflow.edges.all()],
        "max_parallel_nodes": workflow.max_parallel_nodes,
        "parameters": workflow.parameters or {},
    }


def graph_of(run: WorkflowRun) -> tuple[list[str], list[Edge]]:
    graph = run.graph
    return [node["name"] for node in graph["nodes"]], [Edge(**edge) for edge in graph["edges"]]


# A run's graph never changes once it started: its parsed form is kept per run, so the advance that follows
# each of a 100-branch fan-in's ends (one after the other, under the run's lock) neither reads nor parses it
# again. Bounded; an evicted run is parsed again.
@dataclass(frozen=True)
class RunGraph:
    dag: Dag
    nodes: dict[str, dict]  # the graph's node entries by name
    max_parallel: int | None
    parameters: dict  # the workflow's, for every node


_GRAPHS: dict[str, RunGraph] = {}
_GRAPHS_MAX = 256


def run_graph(run: WorkflowRun) -> RunGraph:
    """The run's graph, parsed once per run and process."""
    cached = _GRAPHS.get(run.pk)
    if cached is None:
        names, edges = graph_of(run)
        graph = run.graph
        cached = RunGraph(Dag.of(names, edges), {node["name"]: node for node in graph["nodes"]},
                          graph.get("max_parallel_nodes"), graph.get("parameters") or {})
        if len(_GRAPHS) >= _GRAPHS_MAX:
            _GRAPHS.pop(next(iter(_GRAPHS)))
        _GRAPHS[run.pk] = cached
    return cached


def _current_by_node(rows: Iterable[tuple[str, str, int, T]]) -> dict[str, tuple[int, T]]:
    """Per node name, its highest round and the item of its current attempt there: the latest attempt, unless
    an earlier one succeeded after all (``core.policy.attempts_status``). ``rows``: (node key, status,
    retry_count, item)."""
    best: dict[str, tuple[tuple[int, bool, int], T]] = {}
    for key, status, retry_count, item in rows:
        round_, name = split_node_key(key)
        rank = (round_, *attempt_rank(retry_count, status))
        if name not in best or rank > best[name][0]:
            best[name] = (rank, item)
    return {name: (rank[0], item) for name, (rank, item) in best.items()}


def latest_executions(run: WorkflowRun) -> dict[str, TaskExecution]:
    """Each node's current execution in the run (``_current_by_node``)."""
    rows = TaskExecution.objects.filter(workflow_run=run).only(
        "id", "node_key", "status", "retry_count", "task_id", "result", "end_time", "start_time")
    current = _current_by_node((row.node_key, row.status, row.retry_count, row) for row in rows)
    return {name: row for name, (_, row) in current.items()}


def node_states(run: WorkflowRun, latest: dict[str, TaskExecution] | None = None) -> dict[str, NodeState]:
    """Each node's state in the run's current round. A node skipped or failed in an earlier round is
    waiting again: a re-run decides it anew."""
    if latest is None:  # the advance's read: three small columns, no results
        rows = TaskExecution.objects.filter(workflow_run=run).values_list("node_key", "status", "retry_count")
    else:
        rows = [(row.node_key, row.status, row.retry_count) for row in latest.values()]
    current = _current_by_node((key, status, retry_count, status) for key, status, retry_count in rows)
    states = {}
    for name, (round_, status) in current.items():
        state = NODE_STATE[status]
        if round_ < run.round and state in (NodeState.SKIPPED, NodeState.FAILED):
            state = NodeState.WAITING
        states[name] = state
    return states


def advance_after_node(execution: TaskExecution, *, now: datetime) -> None:
    """Hook, in the transaction that ended ``execution``: if it is a node of a running workflow run, start
    the nodes that may start now, skip the ones that never will, and end the run when nothing is left."""
    if execution.workflow_run_id is None:
        return
    # The graph is read only if this process has not parsed it yet (run_graph).
    run = WorkflowRun.objects.select_for_update().defer("graph").filter(pk=execution.workflow_run_id).first()
    if run is not None and run.status == WorkflowRunStatus.RUNNING:
        advance_run(run, now=now)


def advance_stalled(now: datetime, *, limit: int = 100,
                    atomic: Callable[[], AbstractContextManager[Any]] = transaction.atomic) -> int:
    """Advance the running runs that have no node pending or running. The end of a node normally advances
    its run in the same transaction; a node's execution withdrawn without ending through
    ``executions.services.finish`` (its task deleted while it waited) does not, and this step catches that
    run up. Two indexed reads per tick (runs by status, then their active nodes by run), the first of
    which is empty where no workflow runs. Each run is advanced in a transaction of ``atomic`` (the leader
    passes its fenced one). Returns how many runs it advanced."""
    running = list(WorkflowRun.objects.filter(status=WorkflowRunStatus.RUNNING).values_list("pk", flat=True)[:limit])
    if not running:
        return 0
    busy = set(TaskExecution.objects.filter(workflow_run_id__in=running, status__in=_ACTIVE)
               .values_list("workflow_run_id", flat=True).distinct())
    advanced = 0
    for run_id in (run_id for run_id in running if run_id not in busy):
        with atomic():
            run = WorkflowRun.objects.select_for_update().defer("graph").filter(
                pk=run_id, status=WorkflowRunStatus.RUNNING).first()
            # Read again under the run's lock: a node may have started since.
            if run is not None and not TaskExecution.objects.filter(workflow_run_id=run_id,
                                                                    status__in=_ACTIVE).exists():
                advance_run(run, now=now)
                advanced += 1
    return advanced


def advance_run(run: WorkflowRun, *, now: datetime) -> Advance:
    """Apply ``core.workflows.advance`` to a running run whose row the caller has locked. A node that cannot
    start (its task was deleted) fails at once, so the decision is taken again until it is stable."""
    graph = run_graph(run)
    for _ in range(len(graph.dag.nodes) + 1):
        decided = graph.dag.advance(node_states(run), max_parallel=graph.max_parallel)
        if not _apply(run, decided, now):
            break
    if decided.status != RunStatus.RUNNING:
        end_run(run, decided.status, now=now, reason=_end_reason(decided))
    return decided


def _end_reason(decided: Advance) -> str:
    if decided.status == RunStatus.FAILED:
        return "failed: " + ", ".join(decided.failed) + " failed with no on_failure edge"
    return ""


def node_parameters(run: WorkflowRun, node: dict, task: Task) -> dict:
    """The task's defaults, then the workflow's, then the node's, then the trigger's."""
    return {**(task.parameters or {}), **run_graph(run).parameters, **(node.get("parameters") or {}),
            **(run.parameters or {})}


def _apply(run: WorkflowRun, decided: Advance, now: datetime) -> bool:
    """Insert the started nodes' pending executions and the skipped nodes' skipped ones. Returns whether a
    node failed on the spot (its task is gone), which changes what follows."""
    if not decided.start and not decided.skip:
        return False
    nodes = run_graph(run).nodes
    wanted = {nodes[name]["task_id"] for name in decided.start} | {nodes[name]["task_id"] for name, _ in decided.skip}
    tasks = {task.pk: task for task in Task.objects.filter(pk__in=wanted).only("parameters", "status")}
    rows, failed_now = [], False
    for name in decided.start:
        node = nodes[name]
        task = tasks[node["task_id"]]
        if task.status == TaskStatus.DELETED:
            failed_now = True
            rows.append(_row(run, node, now, ExecutionStatus.FAILED, logs="not started: the task was deleted"))
        else:
            rows.append(_row(run, node, now, ExecutionStatus.PENDING, parameters=node_parameters(run, node, task)))
    rows += [_row(run, nodes[name], now, ExecutionStatus.SKIPPED, logs=reason) for name, reason in decided.skip]
    try:
        with transaction.atomic():
            TaskExecution.objects.bulk_create(rows)
    except IntegrityError:
        # The run's row lock serialises its advances, so this means another node (a split-brain leader)
        # recorded these starts already: theirs stand, and nothing is started twice.
        logger.warning("workflow run %s: nodes %s already started", run.pk, [r.node_key for r in rows],
                       extra=run.log_extra())
        return False
    return failed_now


def _row(run: WorkflowRun, node: dict, now: datetime, status: str, *, logs: str = "",
         parameters: dict | None = None) -> TaskExecution:
    final = status != ExecutionStatus.PENDING
    return TaskExecution(
        task_id=node["task_id"], scheduled_time=run.scheduled_time, status=status, trigger_type=run.trigger_type,
        parameters=parameters or {}, dispatch_after=now, logs=logs, end_time=now if final else None,
        workflow_run=run, workflow_node_id=node.get("node_id"), node_key=node_key(run.pk, run.round, node["name"]),
    )


def end_run(run: WorkflowRun, status: str, *, now: datetime, reason: str = "") -> None:
    """Record the run's end (the caller holds its row) and, failed or succeeded, its alert event; then start
    the workflow's next waiting run."""
    run.status, run.ended_at, run.reason = status, now, reason
    run.save(update_fields=["status", "ended_at", "reason"])
    if status in (RunStatus.FAILED, RunStatus.SUCCESS):
        record_workflow_run_end(workflow_id=run.workflow_id, name=run.workflow.name, run_id=run.pk,
                                failed=status == RunStatus.FAILED, reason=reason, now=now)
    log = logger.warning if status == RunStatus.FAILED else logger.info
    log("workflow run %s %s %s", run.pk, status, reason, extra=run.log_extra())
    start_next_waiting(run.workflow_id, now=now)


def start_next_waiting(workflow_id: str, *, now: datetime) -> WorkflowRun | None:
    """The oldest run waiting for its predecessor (overlap policy sequential) starts once none is running."""
    runs = WorkflowRun.objects.select_for_update().filter(
        workflow_id=workflow_id, status__in=[WorkflowRunStatus.PENDING, WorkflowRunStatus.RUNNING])
    waiting = None
    for run in runs.order_by("scheduled_time", "created_at"):
        if run.status == WorkflowRunStatus.RUNNING:
            return None
        waiting = waiting or run
    if waiting is not None:
        begin(waiting, now=now)
    return waiting


def begin(run: WorkflowRun, *, now: datetime) -> None:
    """A run created (or waiting) starts: its roots start now."""
    run.status, run.started_at = WorkflowRunStatus.RUNNING, run.started_at or now  # a re-run keeps its start
    run.save(update_fields=["status", "started_at"])
    advance_run(run, now=now)


def create_run(workflow: Workflow, *, scheduled_time: datetime, trigger_type: str, now: datetime,
               parameters: dict | None = None, status: str = WorkflowRunStatus.RUNNING, reason: str = "",
               graph: dict | None = None) -> WorkflowRun:
    """Insert a run (the unique (workflow, scheduled_time, trigger_type) key refuses a second one) and, if
    it runs now, start its roots, in the caller's transaction."""
    run = WorkflowRun(workflow=workflow, scheduled_time=scheduled_time, trigger_type=trigger_type,
                      parameters=parameters or {}, graph=graph or snapshot(workflow), reason=reason,
                      status=WorkflowRunStatus.PENDING if status == WorkflowRunStatus.RUNNING else status,
                      ended_at=now if status == WorkflowRunStatus.SKIPPED else None)
    with transaction.atomic():
        run.save(force_insert=True)
    if status == WorkflowRunStatus.RUNNING:
        begin(run, now=now)
    return run


# --- data between nodes: what a node's dispatch carries besides the task's own fields --------------------

# A parent's result larger than this (as JSON) is passed as {"truncated": true, "bytes": n}; so are the
# results beyond PARENT_RESULTS_MAX_BYTES in all. Larger data belongs in storage both nodes can reach.
PARENT_RESULT_MAX_BYTES = 16 * 1024
PARENT_RESULTS_MAX_BYTES = 64 * 1024


# A node's parents had all ended when it was created, so what they hand it never changes: the payload part is
# kept per (run, round, parents), and a 100-branch fan-out reads its root's result once, not 100 times.
_PARENT_RESULTS: dict[tuple, dict] = {}
_PARENT_RESULTS_MAX = 64


def dispatch_extras(execution: TaskExecution) -> dict:
    """For a node's execution (a broadcast node's: each of its shards): the run's id, the node's name and its
    parents' outcomes and results (bounded); ``{}`` for any other execution (no query)."""
    run_id = run_id_of(execution)
    if run_id is None:
        return {}
    round_, name = split_node_key(execution.node_key)
    graph = _GRAPHS.get(run_id)
    if graph is None:
        run = WorkflowRun.objects.only("id").filter(pk=run_id).first()
        if run is None:  # deleted since (a node in progress keeps its run, so only ever a stale row): no extras
            return {}
        graph = run_graph(run)
    parents = tuple(edge.parent for edge in graph.dag.in_edges.get(name, ()))
    key = (run_id, round_, parents)
    results = _PARENT_RESULTS.get(key)
    if results is None:
        results = _parent_results(run_id, round_, parents)
        if len(_PARENT_RESULTS) >= _PARENT_RESULTS_MAX:
            _PARENT_RESULTS.pop(next(iter(_PARENT_RESULTS)))
        _PARENT_RESULTS[key] = results
    return {"workflow_run_id": run_id, "workflow_node": name, "parent_results": results}


def _parent_results(run_id: str, round_: int, parents: tuple[str, ...]) -> dict:
    latest = _parents_latest(run_id, round_, parents)
    results, budget = {}, PARENT_RESULTS_MAX_BYTES
    for parent in parents:
        row = latest.get(parent)
        result, size = _bounded(row.result if row else None, min(PARENT_RESULT_MAX_BYTES, budget))
        budget -= size
        results[parent] = {"status": row.status if row else None, "result": result}
    return results


def _parents_latest(run_id: str, up_to_round: int, parents: tuple[str, ...]) -> dict[str, TaskExecution]:
    """The parents' latest executions up to the child's round (a re-run keeps earlier rounds' successes)."""
    if not parents:
        return {}
    keys = [node_key(run_id, round_, parent) for parent in parents for round_ in range(1, up_to_round + 1)]
    latest: dict[str, TaskExecution] = {}
    for row in TaskExecution.objects.filter(workflow_run_id=run_id, node_key__in=keys).only(
            "id", "node_key", "status", "retry_count", "result"):
        round_, name = split_node_key(row.node_key)
        current = latest.get(name)
        if current is None or (round_, row.retry_count) > (split_node_key(current.node_key)[0], current.retry_count):
            latest[name] = row
    return latest


def _bounded(result: object, limit: int) -> tuple[object, int]:
    """The result itself if its JSON fits in ``limit`` bytes, else a marker; and the bytes it takes."""
    size = len(json.dumps(result, separators=(",", ":"), default=str).encode())
    if size <= limit:
        return result, size
    return {"truncated": True, "bytes": size}, 0
