"""Execution leases end to end (issue #15): real ``runscheduler``, real SDK executors, real signals.

Leases here last 4 s, renewed every second, and an executor has 2 s to accept a dispatch (tests/processes.py
and LEASE_ENV below), so a lost run is known within seconds. What the executors really did is read from
their own journals (tests/e2e/journal_executor.py): ``start`` is a handler that began.
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from tests.processes import Cluster, Processes, child_database_url, child_log_dir

pytestmark = pytest.mark.e2e

EVERY_SECOND = "*/1 * * * * *"
LEASE_SECONDS = 4.0
# An executor has DISPATCH_TIMEOUT to accept a dispatch (its accept-by); a run is lost LEASE_SECONDS after
# its last renewal, and the sweep then asks its executor (up to DISPATCH_TIMEOUT) before declaring it.
LEASE_ENV = {"SCHEDULER_DISPATCH_TIMEOUT": "2", "HEALTH_CHECK_TIMEOUT": "1"}


@pytest.fixture
def cluster(request, transactional_db):
    procs = Processes(child_database_url(), log_dir=child_log_dir(request.node.nodeid), env=LEASE_ENV)
    request.node.child_processes = procs
    try:
        yield Cluster(procs)
    finally:
        procs.close()


def starts(cluster: Cluster) -> dict[str, list[str]]:
    """Execution id -> the executors whose journal shows its handler starting."""
    started: dict[str, list[str]] = defaultdict(list)
    for instance_id, child in cluster.executors.items():
        for event in child.events("start"):
            started[event["execution_id"]].append(instance_id)
    return started


def fires_started_twice(cluster: Cluster, task_id: str) -> list:
    """Fires (scheduled time) of the task whose work began more than once, counting every attempt (retries)."""
    fire_of = dict(TaskExecution.objects.filter(task_id=task_id).values_list("pk", "scheduled_time"))
    per_fire = Counter(fire_of[pk] for pk, where in starts(cluster).items() if pk in fire_of for _ in where)
    return sorted(fire for fire, n in per_fire.items() if n > 1)


def kill(child) -> None:
    """SIGKILL, and reaped: the cluster's waits watch only the children that should be alive."""
    child.send(signal.SIGKILL)
    child.wait(10)


def running_on(cluster: Cluster, execution_id: str) -> str:
    """Waits until the run's handler started on an executor; returns that executor's instance id."""
    return cluster.wait_until(lambda: next(iter(starts(cluster).get(execution_id, [])), None), 20,
                              f"execution {execution_id} to start")


def test_a_killed_executors_run_is_lost_within_its_lease_and_retried_on_another(cluster):
    cluster.start(executors=["ex-a", "ex-b"])
    task = cluster.make_task("sleep", executors=["ex-a", "ex-b"], parameters={"seconds": 60}, timeout_seconds=600,
                             max_retry=1)
    execution_id = cluster.client.trigger_task(task["id"])["id"]
    victim = running_on(cluster, execution_id)
    time.sleep(1.5)  # past its first renewal: the lease counts from the last one
    killed_at = time.monotonic()
    kill(cluster.executors[victim])

    def lost():
        run = TaskExecution.objects.get(pk=execution_id)
        return run if run.status != "running" else None

    run = cluster.wait_until(lost, 30, "the killed executor's run to leave running")
    detected = time.monotonic() - killed_at
    assert run.status == "failed" and "lost: the lease ran out" in run.logs
    assert detected <= LEASE_SECONDS + 2 + 3, f"lost after {detected:.1f} s"  # lease, the question, a tick or so
    retry = cluster.wait_until(lambda: TaskExecution.objects.filter(retry_of_id=execution_id).first(), 10,
                               "the retry")
    survivor = "ex-b" if victim == "ex-a" else "ex-a"
    assert running_on(cluster, retry.pk) == survivor


def test_a_frozen_executor_never_starts_what_was_given_to_another(cluster):
    cluster.start(executors=["ex-a", "ex-b"])
    task = cluster.make_task("echo", cron=EVERY_SECOND, executors=["ex-a", "ex-b"], timeout_seconds=10, max_retry=1,
                             load_balance_strategy="round_robin")
    cluster.wait_until(lambda: len(cluster.executions(task["id"], status="success")) >= 3, 20, "a few runs")
    frozen = cluster.executors["ex-a"]
    frozen.freeze()
    time.sleep(12)  # dispatches pile up in its socket buffer; each is failed over once its accept-by has passed
    frozen.thaw()
    cluster.wait_until(lambda: frozen.events("execute_reply")[-1]["t"] > time.time() - 1
                       if frozen.events("execute_reply") else False, 20, "the thawed executor to answer again")
    time.sleep(3)
    doubles = {pk: where for pk, where in starts(cluster).items() if len(where) > 1}
    assert doubles == {}
    expired = [e for e in frozen.events("execute_reply") if e["status"] == 409]
    assert expired, "the requests read after their accept-by were refused"
    assert fires_started_twice(cluster, task["id"]) == []


def test_an_executor_restarted_with_the_same_instance_id_is_reconciled_at_registration(cluster):
    cluster.procs.env["SCHEDULER_LEASE_SECONDS"] = "60"  # the lease cannot be what ends the run here
    cluster.start(executors=["ex-a"])
    task = cluster.make_task("sleep", parameters={"seconds": 60}, timeout_seconds=600)
    execution_id = cluster.client.trigger_task(task["id"])["id"]
    running_on(cluster, execution_id)
    time.sleep(2.5)  # past its accept-by: a run it does not hold at registration then cannot be on its way
    kill(cluster.executors["ex-a"])
    restarted_at = time.monotonic()
    cluster.executors["ex-a"] = cluster.procs.start_executor("ex-a")
    run = cluster.wait_until(lambda: TaskExecution.objects.filter(pk=execution_id).exclude(status="running").first(),
                             30, "the run it no longer holds to be lost at its registration")
    assert "registered again without it" in run.logs and time.monotonic() - restarted_at < 30


def test_refusals_are_not_retried_and_registrations_do_not_follow_them(cluster, make_executor):
    cluster.start(executors=["ex-a"])
    task = cluster.make_task("sleep", parameters={"seconds": 2}, timeout_seconds=60)
    execution_id = cluster.client.trigger_task(task["id"])["id"]
    running_on(cluster, execution_id)
    # The run is handed to another executor behind ex-a's back: its renewals are revoked, its result refused.
    TaskExecution.objects.filter(pk=execution_id).update(executor=make_executor())
    log = cluster.procs.web.log_path
    cluster.wait_until(lambda: "not_yours" in cluster.executors["ex-a"].log_text()
                       or "another executor" in cluster.executors["ex-a"].log_text(), 15, "the refusal")
    before = _executor_requests(log)
    time.sleep(5)
    after = _executor_requests(log)
    assert after["register"] - before["register"] == 0
    assert after["callbacks"] - before["callbacks"] <= 1


def _executor_requests(log_path) -> Counter:
    text = log_path.read_text(errors="replace")
    return Counter(register=text.count("POST /api/v1/executors/register"),
                   callbacks=text.count("POST /api/v1/executions/callbacks"))


def test_results_finished_while_the_web_tier_was_down_are_kept_and_no_work_runs_twice(cluster):
    cluster.start(executors=["ex-a", "ex-b"])
    task = cluster.make_task("echo", cron=EVERY_SECOND, executors=["ex-a", "ex-b"], timeout_seconds=3, max_retry=1)
    cluster.wait_until(lambda: len(cluster.executions(task["id"], status="success")) >= 2, 20, "a few runs")
    web = cluster.procs.web
    kill(web)
    time.sleep(15)  # executors finish runs the leader sends them; their results and renewals cannot get through
    restarted = cluster.procs.start_web(web.port)
    cluster.procs.wait_web()
    cluster.wait_until(lambda: all(child.log_text().count("registered as") >= 2
                                   for child in cluster.executors.values()), 30, "the executors to register again")
    time.sleep(3)
    cluster.client.pause_task(task["id"])
    cluster.wait_until(lambda: not TaskExecution.objects.filter(task_id=task["id"], status__in=["pending", "running"])
                       .exists(), 30, "every run of the paused task to end (the outboxes delivered)")
    succeeded = {e["execution_id"] for child in cluster.executors.values() for e in child.events("end")
                 if e.get("outcome") == "success"}
    rows = dict(TaskExecution.objects.filter(pk__in=succeeded).values_list("pk", "status"))
    refused = sorted(pk for pk, status in rows.items() if status != "success")
    assert refused == [], f"{len(refused)} successes not recorded as such"
    assert fires_started_twice(cluster, task["id"]) == []
    assert restarted.alive


def test_a_run_fired_ahead_and_left_unsent_by_a_stopped_scheduler_follows_its_misfire_policy(cluster):
    cluster.procs.env["SCHEDULER_MISFIRE_THRESHOLD"] = "1"
    cluster.start(executors=["ex-a"])
    task = cluster.make_task("echo", cron="*/5 * * * * *", misfire_policy="skip", timeout_seconds=10)

    def fired_ahead():
        soon = TaskExecution.objects.filter(task_id=task["id"], status="pending",
                                            scheduled_time__gt=timezone.now() + timedelta(seconds=1)).first()
        return soon

    run = cluster.wait_until(fired_ahead, 15, "a run fired ahead, due in more than a second")
    scheduler = cluster.schedulers["s1"]
    scheduler.send(signal.SIGTERM)
    scheduler.wait(20)
    cluster.wait_until(lambda: timezone.now() > run.scheduled_time + timedelta(seconds=2), 10, "the run to be missed")
    cluster.schedulers["s2"] = cluster.procs.start_scheduler("s2")
    run = cluster.wait_until(lambda: TaskExecution.objects.filter(pk=run.pk).exclude(status="pending").first(), 30,
                             "the new leader to decide the run")
    assert run.status == "skipped" and "never sent" in run.logs
    assert cluster.executors["ex-a"].events("execute", run.pk) == []


@contextmanager
def table_locked(seconds: float):
    """Holds a lock on task_executions that stops every other writer (and, but on SQLite, reader)."""
    from django.db import connection

    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "mysql":
            cursor.execute("LOCK TABLES task_executions WRITE")
        elif vendor == "postgresql":
            cursor.execute("BEGIN")
            # The test's own session may sit idle in this transaction longer than the database limit allows.
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cursor.execute("LOCK TABLE task_executions IN ACCESS EXCLUSIVE MODE")
        else:
            cursor.execute("BEGIN EXCLUSIVE")
        try:
            time.sleep(seconds)  # the length of the lock is the disruption itself
            yield
        finally:
            cursor.execute("UNLOCK TABLES" if vendor == "mysql" else "COMMIT")


def test_after_a_table_lock_no_run_already_final_is_posted(cluster):
    cluster.start(executors=["ex-a"])
    task = cluster.make_task("echo", cron=EVERY_SECOND, timeout_seconds=2, max_retry=1)
    cluster.wait_until(lambda: len(cluster.executions(task["id"], status="success")) >= 2, 20, "a few runs")
    with table_locked(10):
        pass
    time.sleep(6)
    ended = dict(TaskExecution.objects.filter(task_id=task["id"], end_time__isnull=False)
                 .values_list("pk", "end_time"))
    late = [event for event in cluster.executors["ex-a"].events("execute")
            if event["execution_id"] in ended and ended[event["execution_id"]].timestamp() < event["t"] - 0.05]
    assert late == [], "dispatches of runs already final"
