"""The README's deployment, as real processes on loopback through the production entrypoint: two web nodes
(`manage.py serve`, gunicorn, DEBUG=0) on two ports with no proxy in front, three scheduler nodes, two SDK
executors given both web nodes' addresses. Runs flow; a web node killed mid-traffic loses no result (the
executors move to the other node); a rolling restart of every process, one at a time, loses nothing: every
fire time has its run, every run the executors finished has that outcome in the database, none twice.

MariaDB/MySQL only: the topology is the same on PostgreSQL, and the suite's time is better spent once.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection

from executions.models import TaskExecution
from tasks.models import Task

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor != "mysql", reason="the deployment test runs on MariaDB/MySQL"),
]

WEBS = ("web-1", "web-2")
SCHEDULERS = ("s1", "s2", "s3")
EXECUTORS = ("ex-a", "ex-b")
EVERY_SECOND = "* * * * * *"
FINAL = ("success", "failed", "timeout", "cancelled", "skipped")


@pytest.fixture
def deployment(cluster):
    cluster.start_production(webs=WEBS, schedulers=SCHEDULERS, executors=EXECUTORS)
    tasks = [
        # A result every second, and one that is always in flight: some callback is on its way at any moment.
        cluster.make_task("echo.deploy", cron=EVERY_SECOND, executors=EXECUTORS, timeout_seconds=30),
        cluster.make_task("sleep.deploy", cron=EVERY_SECOND, executors=EXECUTORS, timeout_seconds=30,
                          parameters={"seconds": 0.7}),
    ]
    return cluster, [task["id"] for task in tasks]


def successes_since(task_ids: list[str], since: datetime) -> int:
    return TaskExecution.objects.filter(task_id__in=task_ids, status="success", end_time__gt=since).count()


def wait_results(cluster, task_ids: list[str], count: int, message: str, timeout: float = 60) -> None:
    since = datetime.now(UTC)
    cluster.wait_until(lambda: successes_since(task_ids, since) >= count, timeout, message, interval=0.2)


def restart_web(cluster, name: str) -> None:
    old = cluster.webs[name]
    old.send(signal.SIGTERM)  # gunicorn: stop accepting, finish the requests in flight
    assert old.wait(60) == 0, old.tail()
    cluster.webs[name] = cluster.procs.start_production_web(name, port=old.port)
    cluster.procs.wait_web(120, cluster.webs[name])


def restart_scheduler(cluster, instance_id: str) -> None:
    old = cluster.schedulers[instance_id]
    old.send(signal.SIGTERM)  # gives up the lock first: a follower leads within an election retry
    assert old.wait(60) == 0, old.tail()
    cluster.schedulers[instance_id] = cluster.procs.start_scheduler(instance_id)
    cluster.wait_schedulers_running(60)


def restart_executor(cluster, instance_id: str) -> None:
    old = cluster.executors[instance_id]
    old.send(signal.SIGTERM)  # refuses new work (the scheduler tries the other), cancels and reports its runs
    assert old.wait(60) == 0, old.tail()
    addresses = ",".join(web.url for web in cluster.webs.values())
    port = int(old.argv[old.argv.index("--port") + 1])  # executors keep their address, as in production
    cluster.executors[instance_id] = child = cluster.procs.start_executor(instance_id, scheduler=addresses,
                                                                          port=port)
    cluster.wait_until(lambda: child.events("execute"), 60, f"{instance_id} to run again after its restart")


def settle(cluster, task_ids: list[str]) -> list[TaskExecution]:
    """Stops firing (next_run_time stays where firing got) and waits for every run to end."""
    Task.objects.filter(pk__in=task_ids).update(status="paused")
    cluster.wait_until(lambda: not TaskExecution.objects.filter(task_id__in=task_ids)
                       .exclude(status__in=FINAL).exists(), 60, "every run to end", interval=0.2)
    return list(TaskExecution.objects.filter(task_id__in=task_ids).order_by("scheduled_time"))


def missing_fire_times(task: Task, rows: list[TaskExecution]) -> list[datetime]:
    """Fire times from the task's first run up to its final next_run_time that have no first attempt."""
    fired = {row.scheduled_time for row in rows if row.task_id == task.pk and row.retry_count == 0}
    schedule, current, missing = task.schedule(), min(fired), []
    while current < task.next_run_time:
        if current not in fired:
            missing.append(current)
        current = schedule.next_after(current)
    return missing


def finished_by_executors(cluster) -> dict[str, str]:
    """execution id -> the outcome a handler ended with, from both executors' journals (all their lives)."""
    return {event["execution_id"]: event["outcome"] for child in cluster.procs.children
            if getattr(child, "journal_path", None) for event in child.events("end")}


def test_two_web_nodes_three_schedulers_two_executors_survive_a_killed_web_node_and_a_rolling_restart(
        deployment):
    cluster, task_ids = deployment
    wait_results(cluster, task_ids, 6, "runs to flow through the deployment")

    # A web node dies mid-traffic. The executors were talking to it (their first address): their results
    # in flight and the ones that follow reach the other node.
    killed_at = time.monotonic()
    cluster.webs["web-1"].kill_group()  # the master and its workers: the whole node
    cluster.webs["web-1"].wait(10)
    wait_results(cluster, task_ids, 6, "results after web-1 was killed")
    failover_seconds = time.monotonic() - killed_at
    assert "/callback" in cluster.webs["web-2"].log_text()
    cluster.webs["web-1"] = cluster.procs.start_production_web("web-1", port=cluster.webs["web-1"].port)
    cluster.procs.wait_web(120, cluster.webs["web-1"])

    # A rolling restart, one process at a time, as an upgrade does it.
    for name in WEBS:
        restart_web(cluster, name)
        wait_results(cluster, task_ids, 2, f"results after restarting {name}")
    for instance_id in SCHEDULERS:
        restart_scheduler(cluster, instance_id)
        wait_results(cluster, task_ids, 2, f"results after restarting {instance_id}")
    cluster.wait_one_leader(30)
    for instance_id in EXECUTORS:
        restart_executor(cluster, instance_id)
        wait_results(cluster, task_ids, 2, f"results after restarting {instance_id}")

    rows = settle(cluster, task_ids)
    statuses = Counter(row.status for row in rows)
    print(f"\ndeployment: {len(rows)} runs {dict(statuses)}; 6 results in the {failover_seconds:.1f} s "
          "after web-1 was killed")
    assert cluster.duplicate_fires() == []
    for task in Task.objects.filter(pk__in=task_ids):
        assert missing_fire_times(task, rows) == [], task.name
    # No result lost: each run a handler finished has that outcome, none waited for the timeout sweep.
    outcomes = finished_by_executors(cluster)
    recorded = {str(row.pk): row.status for row in rows}
    assert {eid: (outcome, recorded.get(eid)) for eid, outcome in outcomes.items()
            if recorded.get(eid) != outcome} == {}
    assert statuses["timeout"] == statuses["failed"] == 0
    assert statuses["success"] >= 20
