"""A fan-out/fan-in workflow survives its leader being SIGKILLed, twice: once while the root runs, so the
root ends and its children are created while no scheduler leads, and once while the branches run, so the
fan-in child is created with no leader. A new node is started only after the parents ended: it must find
the children (created in the transaction that ended their parents) and dispatch each exactly once.

Real processes on one database (MariaDB/MySQL or PostgreSQL, for the server-side leader lock).
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import requests
from django.db import connection
from django.db.models import Count

from executions.models import TaskExecution
from workflows.models import WorkflowRun

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                       reason="needs a server-side session lock: MySQL/MariaDB or PostgreSQL"),
]

BRANCHES = 3


def api(cluster, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{cluster.web.url}/api/v1/{path}", json=body, timeout=10,
                                headers={"Authorization": f"Bearer {cluster.admin_api_key()}"})
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


def started(cluster, task_id: str) -> list[str]:
    """Executions of ``task_id`` whose handler the executor started (it received and accepted them)."""
    ids = {row.pk for row in cluster.executions(task_id)}
    return [event["execution_id"] for event in cluster.executors["ex-a"].events("start")
            if event["execution_id"] in ids]


def kill_leader(cluster) -> str:
    leader = cluster.wait_one_leader()
    cluster.schedulers[leader].send(signal.SIGKILL)
    cluster.schedulers[leader].wait(10)
    return leader


def ended_with_children_waiting(cluster, run_id: str, parents: list[str], children: list[str]) -> bool:
    rows = {row.node_key.rsplit(":", 1)[1]: row.status for row in TaskExecution.objects.filter(workflow_run_id=run_id)}
    return all(rows.get(name) == "success" for name in parents) and all(
        rows.get(name) == "pending" for name in children)


def test_leader_killed_between_parents_ending_and_children_starting_loses_and_duplicates_no_node(cluster):
    cluster.start(schedulers=("n1",), executors=["ex-a"],
                  scheduler_env={"SCHEDULER_DISPATCH_TIMEOUT": "2", "HEALTH_CHECK_TIMEOUT": "2"})
    root = cluster.make_task("sleep.wf-root", parameters={"seconds": 1.5}, max_retry=0, timeout_seconds=60)
    branches = [cluster.make_task(f"sleep.wf-branch-{i}", parameters={"seconds": 1.5}, max_retry=0,
                                  timeout_seconds=60) for i in range(BRANCHES)]
    join = cluster.make_task("echo.wf-join", max_retry=0, timeout_seconds=60)
    nodes = [{"name": "root", "task_id": root["id"]}, {"name": "join", "task_id": join["id"]},
             *({"name": f"b{i}", "task_id": task["id"]} for i, task in enumerate(branches))]
    edges = [*({"parent": "root", "child": f"b{i}"} for i in range(BRANCHES)),
             *({"parent": f"b{i}", "child": "join"} for i in range(BRANCHES))]
    workflow = api(cluster, "POST", "workflows", {"name": "failover fan", "nodes": nodes, "edges": edges})
    run_id = api(cluster, "POST", f"workflows/{workflow['id']}/trigger")["id"]

    branch_names = [f"b{i}" for i in range(BRANCHES)]
    cluster.wait_until(lambda: started(cluster, root["id"]), 20, "the root to start on the executor")
    killed = kill_leader(cluster)
    cluster.wait_until(lambda: ended_with_children_waiting(cluster, run_id, ["root"], branch_names), 20,
                       "the root to end (no leader) and its children to wait, created")
    cluster.schedulers["n2"] = cluster.procs.start_scheduler("n2")
    cluster.wait_one_leader(30, other_than=killed)
    cluster.wait_until(lambda: all(started(cluster, t["id"]) for t in branches), 30, "every branch to start")
    killed = kill_leader(cluster)
    cluster.wait_until(lambda: ended_with_children_waiting(cluster, run_id, branch_names, ["join"]), 20,
                       "the branches to end (no leader) and the join to wait, created")
    cluster.schedulers["n3"] = cluster.procs.start_scheduler("n3")
    cluster.wait_one_leader(30, other_than=killed)

    run = cluster.wait_until(
        lambda: WorkflowRun.objects.filter(pk=run_id).exclude(status="running").first(), 60, "the run to end")
    assert run.status == "success", run.reason
    rows = TaskExecution.objects.filter(workflow_run_id=run_id)
    assert rows.count() == 2 + BRANCHES and set(rows.values_list("status", flat=True)) == {"success"}
    assert not rows.values("node_key", "retry_count").annotate(n=Count("id")).filter(n__gt=1).exists()
    delivered = Counter(event["execution_id"] for event in cluster.executors["ex-a"].events("execute"))
    assert set(delivered) >= set(rows.values_list("pk", flat=True))
    assert all(delivered[pk] == 1 for pk in rows.values_list("pk", flat=True)), delivered
