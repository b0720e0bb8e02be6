"""Workflow DAGs, pure: what a workflow may look like (checked when it is saved) and how a run advances
(which nodes start, which are skipped and why, and the run's status). No Django, no clock, no I/O.

A node runs when every parent has ended and every in-edge's condition holds: ``on_success`` needs the
parent to have succeeded, ``on_failure`` to have failed, ``always`` to have run (either way). A parent that
was skipped satisfies no edge, so a skip flows down the branch. A run fails when a node failed and no
``on_failure`` edge leaves it (the workflow did not plan for that failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class EdgeCondition(StrEnum):
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"


class NodeState(StrEnum):
    """A node's state in one run, as read from its latest execution."""

    WAITING = "waiting"  # not started, not skipped: no execution yet
    ACTIVE = "active"  # pending or running (a retry waiting out its backoff too)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed, timed out or cancelled, with no retry left
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED = frozenset({NodeState.SUCCEEDED, NodeState.FAILED, NodeState.SKIPPED})
RAN = frozenset({NodeState.SUCCEEDED, NodeState.FAILED})


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    condition: str = EdgeCondition.ON_SUCCESS


# --- validation, at save time ----------------------------------------------------------------------

class ProblemKind(StrEnum):
    EMPTY = "empty"
    UNKNOWN_NODE = "unknown_node"  # an edge names a node the workflow does not have
    DUPLICATE_EDGE = "duplicate_edge"
    CYCLE = "cycle"
    UNREACHABLE = "unreachable"  # a node whose in-edges can never all hold


@dataclass(frozen=True)
class DagProblem:
    kind: ProblemKind
    error: str
    details: dict = field(default_factory=dict)


def dag_problem(nodes: Sequence[str], edges: Iterable[Edge]) -> DagProblem | None:
    """The first reason the graph cannot be a workflow, or None when it can."""
    edges = list(edges)
    if not nodes:
        return DagProblem(ProblemKind.EMPTY, "a workflow needs at least one node")
    known = set(nodes)
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        for end in (edge.parent, edge.child):
            if end not in known:
                return DagProblem(ProblemKind.UNKNOWN_NODE, f"edge {edge.parent} -> {edge.child}: no node '{end}'",
                                  {"node": end})
        if (edge.parent, edge.child) in seen:
            return DagProblem(ProblemKind.DUPLICATE_EDGE, f"edge {edge.parent} -> {edge.child} is given twice",
                              {"parent": edge.parent, "child": edge.child})
        seen.add((edge.parent, edge.child))
    cycle = find_cycle(nodes, edges)
    if cycle:
        return DagProblem(ProblemKind.CYCLE, "the edges form a cycle: " + " -> ".join(cycle), {"cycle": cycle})
    return _contradiction(nodes, edges)


def topological_order(nodes: Sequence[str], edges: Iterable[Edge]) -> list[str]:
    """Kahn's order, ties kept in ``nodes`` order. Nodes on a cycle are left out."""
    edges = list(edges)
    indegree = {node: 0 for node in nodes}
    children: dict[str, list[str]] = {node: [] for node in nodes}
    for edge in edges:
        indegree[edge.child] += 1
        children[edge.parent].append(edge.child)
    position = {node: index for index, node in enumerate(nodes)}
    ready = [node for node in nodes if indegree[node] == 0]
    order = []
    while ready:
        ready.sort(key=position.__getitem__)
        node = ready.pop(0)
        order.append(node)
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order


def find_cycle(nodes: Sequence[str], edges: Iterable[Edge]) -> list[str]:
    """One cycle as a closed path (``[a, b, a]``), or ``[]`` when the graph is acyclic."""
    edges = list(edges)
    left = [node for node in nodes if node not in set(topological_order(nodes, edges))]
    if not left:
        return []
    children: dict[str, list[str]] = {node: [] for node in left}
    for edge in edges:
        if edge.parent in children and edge.child in children:
            children[edge.parent].append(edge.child)
    # Every node left has a parent left (else Kahn would have taken it): walking parents must loop.
    parents = {child: parent for parent, kids in children.items() for child in kids}
    path, node = [], left[0]
    while node not in path:
        path.append(node)
        node = parents[node]
    cycle = path[path.index(node):] + [node]
    return list(reversed(cycle))


def _contradiction(nodes: Sequence[str], edges: list[Edge]) -> DagProblem | None:
    """A node that needs some ancestor both to succeed and to fail can never run. Each node carries the
    outcomes its in-edges (and theirs, up the graph) require; outcomes are otherwise free, so a node can run
    exactly when no ancestor is required both ways."""
    requires: dict[str, dict[str, set[str]]] = {}
    in_edges: dict[str, list[Edge]] = {node: [] for node in nodes}
    for edge in edges:
        in_edges[edge.child].append(edge)
    for node in topological_order(nodes, edges):
        needed: dict[str, set[str]] = {}
        for edge in in_edges[node]:
            for ancestor, outcomes in requires[edge.parent].items():
                needed.setdefault(ancestor, set()).update(outcomes)
            if edge.condition != EdgeCondition.ALWAYS:
                needed.setdefault(edge.parent, set()).add(edge.condition)
        for ancestor, outcomes in needed.items():
            if len(outcomes) > 1:
                return DagProblem(
                    ProblemKind.UNREACHABLE,
                    f"node '{node}' can never run: it needs '{ancestor}' both to succeed and to fail",
                    {"node": node, "ancestor": ancestor})
        requires[node] = needed
    return None


# --- advancing a run -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Advance:
    start: list[str]  # nodes to start now, in order
    skip: list[tuple[str, str]]  # (node, why) to record as skipped now
    status: RunStatus  # the run's status once these are applied
    failed: list[str]  # the nodes whose failure no on_failure edge handles


def edge_holds(condition: str, parent: NodeState) -> bool:
    if condition == EdgeCondition.ON_SUCCESS:
        return parent == NodeState.SUCCEEDED
    if condition == EdgeCondition.ON_FAILURE:
        return parent == NodeState.FAILED
    return parent in RAN


@dataclass(frozen=True)
class Dag:
    """A checked graph with what advancing a run needs precomputed (a run's graph never changes, so a
    caller may keep one per run)."""

    nodes: tuple[str, ...]
    order: tuple[str, ...]  # topological
    in_edges: dict[str, tuple[Edge, ...]]
    handled: frozenset[str]  # nodes with an on_failure edge out

    @classmethod
    def of(cls, nodes: Sequence[str], edges: Iterable[Edge]) -> Dag:
        edges = list(edges)
        in_edges: dict[str, list[Edge]] = {node: [] for node in nodes}
        for edge in edges:
            in_edges[edge.child].append(edge)
        return cls(nodes=tuple(nodes), order=tuple(topological_order(nodes, edges)),
                   in_edges={node: tuple(found) for node, found in in_edges.items()},
                   handled=frozenset(e.parent for e in edges if e.condition == EdgeCondition.ON_FAILURE))

    def advance(self, states: Mapping[str, NodeState], *, max_parallel: int | None = None) -> Advance:
        """Decide a run's next move from its nodes' states (a missing node is waiting).

        In topological order, a waiting node whose parents have all ended either starts (every in-edge
        holds) or is skipped (one does not), so a skip decided here reaches its descendants in the same
        call. At most ``max_parallel`` nodes are active at once; the others stay waiting and start as
        active ones end.
        """
        state = {node: states.get(node, NodeState.WAITING) for node in self.nodes}
        ready, skip = [], []
        for node in self.order:
            in_edges = self.in_edges[node]
            if state[node] != NodeState.WAITING or any(state[e.parent] not in ENDED for e in in_edges):
                continue
            broken = [e for e in in_edges if not edge_holds(e.condition, state[e.parent])]
            if broken:
                state[node] = NodeState.SKIPPED
                skip.append((node, skip_reason(broken[0], state[broken[0].parent])))
            else:
                ready.append(node)
        active = sum(1 for value in state.values() if value == NodeState.ACTIVE)
        room = len(ready) if max_parallel is None else max(0, max_parallel - active)
        failed = [node for node in self.nodes if state[node] == NodeState.FAILED and node not in self.handled]
        if active or ready or any(value == NodeState.WAITING for value in state.values()):
            status = RunStatus.RUNNING
        else:
            status = RunStatus.FAILED if failed else RunStatus.SUCCESS
        return Advance(start=ready[:room], skip=skip, status=status, failed=failed)


def advance(nodes: Sequence[str], edges: Iterable[Edge], states: Mapping[str, NodeState], *,
            max_parallel: int | None = None) -> Advance:
    """``Dag.of(nodes, edges).advance(states)``: see there."""
    return Dag.of(nodes, edges).advance(states, max_parallel=max_parallel)


def skip_reason(edge: Edge, parent: NodeState) -> str:
    return f"skipped: the edge from '{edge.parent}' needs {edge.condition}, and '{edge.parent}' {parent}"


def rerun_plan(nodes: Sequence[str], states: Mapping[str, NodeState]) -> tuple[list[str], list[str]]:
    """A failed run re-run from its failures: (the failed nodes, started again; the skipped nodes, waiting
    again so they are decided anew). Nodes that succeeded keep their result."""
    again = [node for node in nodes if states.get(node) == NodeState.FAILED]
    reset = [node for node in nodes if states.get(node) == NodeState.SKIPPED]
    return again, reset
