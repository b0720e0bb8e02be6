"""Workflow DAGs, pure: validation at save time and a run's advance, one row per case."""

import pytest

from core.workflows import (
    Edge,
    NodeState,
    ProblemKind,
    RunStatus,
    advance,
    dag_problem,
    find_cycle,
    rerun_plan,
    topological_order,
)

S, F, A = "on_success", "on_failure", "always"
W, ACT, OK, BAD, SKIP = (NodeState.WAITING, NodeState.ACTIVE, NodeState.SUCCEEDED, NodeState.FAILED,
                         NodeState.SKIPPED)


def edges(*triples):
    return [Edge(p, c, cond) for p, c, cond in triples]


CHAIN = (["a", "b", "c"], edges(("a", "b", S), ("b", "c", S)))
DIAMOND = (["a", "b", "c", "d"], edges(("a", "b", S), ("a", "c", S), ("b", "d", S), ("c", "d", S)))
ON_FAILURE = (["a", "ok", "fix"], edges(("a", "ok", S), ("a", "fix", F)))
CLEANUP = (["a", "clean"], edges(("a", "clean", A)))


@pytest.mark.parametrize(("nodes", "graph", "kind"), [
    ([], [], ProblemKind.EMPTY),
    (["a"], edges(("a", "x", S)), ProblemKind.UNKNOWN_NODE),
    (["a", "b"], edges(("a", "b", S), ("a", "b", F)), ProblemKind.DUPLICATE_EDGE),
    (["a"], edges(("a", "a", S)), ProblemKind.CYCLE),
    (["a", "b", "c"], edges(("a", "b", S), ("b", "c", S), ("c", "a", S)), ProblemKind.CYCLE),
    (["a", "b", "c", "d"], edges(("a", "b", S), ("a", "c", F), ("b", "d", S), ("c", "d", S)),
     ProblemKind.UNREACHABLE),  # d needs a to succeed (via b) and to fail (via c)
    (["a", "b", "c", "d", "e"], edges(("a", "b", S), ("b", "c", A), ("a", "d", F), ("c", "e", S), ("d", "e", A)),
     ProblemKind.UNREACHABLE),  # the contradiction is two levels up
    (["a", "b", "c"], edges(("a", "b", S), ("a", "c", F), ("b", "c", A)),
     ProblemKind.UNREACHABLE),  # c needs a to fail, and b to have run, which needs a to succeed
])
def test_refused_graphs(nodes, graph, kind):
    problem = dag_problem(nodes, graph)
    assert problem is not None and problem.kind == kind


@pytest.mark.parametrize(("nodes", "graph"), [
    (["a"], []),
    CHAIN, DIAMOND, ON_FAILURE, CLEANUP,
    (["a", "b"], []),  # two independent roots run in parallel
])
def test_accepted_graphs(nodes, graph):
    assert dag_problem(nodes, graph) is None


def test_cycle_is_reported_as_a_closed_path_in_edge_direction():
    cycle = find_cycle(["a", "b", "c"], edges(("a", "b", S), ("b", "c", S), ("c", "a", S)))
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    pairs = set(zip(cycle, cycle[1:], strict=False))
    assert pairs <= {("a", "b"), ("b", "c"), ("c", "a")}


def test_topological_order_keeps_the_given_order_among_ties():
    assert topological_order(["d", "c", "b", "a"], edges(("a", "b", S))) == ["d", "c", "a", "b"]


@pytest.mark.parametrize(("graph", "states", "start", "skip", "status"), [
    # linear chain
    (CHAIN, {}, ["a"], [], RunStatus.RUNNING),
    (CHAIN, {"a": ACT}, [], [], RunStatus.RUNNING),
    (CHAIN, {"a": OK}, ["b"], [], RunStatus.RUNNING),
    (CHAIN, {"a": OK, "b": OK, "c": OK}, [], [], RunStatus.SUCCESS),
    (CHAIN, {"a": BAD}, [], ["b", "c"], RunStatus.FAILED),  # the skip flows down in one call
    # fan-out starts siblings together; fan-in waits for every parent
    (DIAMOND, {"a": OK}, ["b", "c"], [], RunStatus.RUNNING),
    (DIAMOND, {"a": OK, "b": OK, "c": ACT}, [], [], RunStatus.RUNNING),
    (DIAMOND, {"a": OK, "b": OK, "c": OK}, ["d"], [], RunStatus.RUNNING),
    (DIAMOND, {"a": OK, "b": OK, "c": BAD}, [], ["d"], RunStatus.FAILED),
    # on-failure branch: the failure is handled, the success branch is skipped
    (ON_FAILURE, {"a": BAD}, ["fix"], ["ok"], RunStatus.RUNNING),
    (ON_FAILURE, {"a": BAD, "ok": SKIP, "fix": OK}, [], [], RunStatus.SUCCESS),
    (ON_FAILURE, {"a": OK}, ["ok"], ["fix"], RunStatus.RUNNING),
    (ON_FAILURE, {"a": BAD, "ok": SKIP, "fix": BAD}, [], [], RunStatus.FAILED),  # the handler failed
    # always: runs after either outcome, but a failure it follows still fails the run
    (CLEANUP, {"a": BAD}, ["clean"], [], RunStatus.RUNNING),
    (CLEANUP, {"a": BAD, "clean": OK}, [], [], RunStatus.FAILED),
    (CLEANUP, {"a": SKIP}, [], ["clean"], RunStatus.SUCCESS),
])
def test_advance(graph, states, start, skip, status):
    nodes, graph_edges = graph
    decided = advance(nodes, graph_edges, states)
    assert decided.start == start
    assert [node for node, _ in decided.skip] == skip
    assert decided.status == status


def test_skip_says_which_edge_did_not_hold():
    nodes, graph = ON_FAILURE
    (node, reason), = advance(nodes, graph, {"a": OK}).skip
    assert node == "fix" and "'a'" in reason and "on_failure" in reason and "succeeded" in reason


@pytest.mark.parametrize(("limit", "active", "start"), [
    (None, 0, 5), (2, 0, 2), (2, 1, 1), (2, 2, 0), (10, 0, 5),
])
def test_fan_out_respects_the_concurrency_limit(limit, active, start):
    nodes = ["root", *[f"n{i}" for i in range(5)], "x", "y"]
    graph = [Edge("root", f"n{i}") for i in range(5)] + [Edge("root", "x"), Edge("root", "y")]
    states = {"root": OK, "x": ACT if active >= 1 else OK, "y": ACT if active >= 2 else OK}
    decided = advance(nodes, graph, states, max_parallel=limit)
    assert decided.start == [f"n{i}" for i in range(start)]
    assert decided.status == RunStatus.RUNNING


def test_failed_nodes_are_named():
    nodes, graph = DIAMOND
    assert advance(nodes, graph, {"a": OK, "b": BAD, "c": OK}).failed == ["b"]


def test_rerun_starts_failures_again_and_reopens_skips():
    nodes, _ = DIAMOND
    again, reset = rerun_plan(nodes, {"a": OK, "b": BAD, "c": OK, "d": SKIP})
    assert again == ["b"] and reset == ["d"]
