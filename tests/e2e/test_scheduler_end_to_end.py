"""End to end on loopback: ``manage.py runserver``, ``manage.py runscheduler`` and real executors (the
journalling test executor, built on ``scheduler_sdk.Executor``), all on the test database.

Runs on any database. Timings come from tests/processes.py (FAST_TUNABLES): 50 ms ticks, retry backoff
base 0.2 s, timeout grace 0.5 s, health checks every second.
"""

from __future__ import annotations

import math
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from scheduling.models import SchedulerInstance
from tests.processes import FAST_TUNABLES

pytestmark = pytest.mark.e2e

EVERY_SECOND = "*/1 * * * * *"
GRACE = float(FAST_TUNABLES["SCHEDULER_TIMEOUT_GRACE_SECONDS"])
BACKOFF_BASE = float(FAST_TUNABLES["SCHEDULER_RETRY_BACKOFF_BASE"])
FIRE_AHEAD_SECONDS = float(FAST_TUNABLES["SCHEDULER_FIRE_AHEAD_SECONDS"])


def assert_no_overlap(rows: list[TaskExecution]) -> None:
    """Runs (rows that started) never overlap: each starts after the previous one ended."""
    started = sorted((r for r in rows if r.start_time is not None), key=lambda r: r.start_time)
    for before, after in zip(started, started[1:], strict=False):
        assert before.end_time is not None, f"{before} has no end but {after} started after it"
        assert after.start_time >= before.end_time, f"{after} started before {before} ended"


def max_concurrency(events: list[dict]) -> int:
    """Most handlers running at once according to the executor's journal."""
    running = peak = 0
    for event in sorted(events, key=lambda e: e["t"]):
        if event["event"] == "start":
            running += 1
            peak = max(peak, running)
        elif event["event"] == "end":
            running -= 1
    return peak


def test_per_second_cron_fires_once_a_second_and_records_results(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("echo", cron=EVERY_SECOND, parameters={"hello": "world"}, timeout_seconds=10)

    cluster.wait_until(lambda: len(cluster.executions(task["id"], status="success")) >= 3, 20,
                       "three successful runs of the per-second task")
    now = timezone.now()
    every = cluster.executions(task["id"])
    # Runs are created up to SCHEDULER_FIRE_AHEAD_SECONDS early, pending until their time.
    ahead = [r for r in every if r.scheduled_time > now]
    assert {r.status for r in ahead} <= {"pending"}
    assert all(r.scheduled_time <= now + timedelta(seconds=FIRE_AHEAD_SECONDS + 1) for r in ahead)
    rows = [r for r in every if r.scheduled_time <= now]

    scheduled = [r.scheduled_time for r in every]
    assert len(set(scheduled)) == len(scheduled), "two executions for one fire time"
    assert all(t.microsecond == 0 for t in scheduled)
    assert {b - a for a, b in zip(scheduled, scheduled[1:], strict=False)} == {timedelta(seconds=1)}
    elapsed = math.floor((now - scheduled[0]).total_seconds())
    assert elapsed - 1 <= len(rows) <= elapsed + 1, f"{len(rows)} fires in {elapsed} s"
    assert {r.status for r in rows} <= {"success", "running", "pending"}

    successes = [r for r in rows if r.status == "success"]
    for run in successes:
        assert (run.trigger_type, run.retry_count) == ("scheduled", 0)
        assert run.executor_id == cluster.executor_ids["ex-a"]
        assert run.result == {"echo": {"hello": "world"}, "retry_count": 0}
        assert timedelta(0) <= run.start_time - run.scheduled_time < timedelta(seconds=2)
        assert run.end_time >= run.start_time and run.duration_ms is not None

    delivered = [e["execution_id"] for e in executor.events("execute")]
    assert len(delivered) == len(set(delivered)), "an execution was dispatched twice"
    assert {r.pk for r in successes} <= set(delivered)


def test_failing_handler_fails_then_is_retried_up_to_max_retry(cluster):
    cluster.start(executors=["ex-a"])
    task = cluster.make_task("fail", max_retry=2, parameters={"message": "boom"})
    cluster.client.trigger_task(task["id"])

    def three_failed():
        rows = cluster.executions(task["id"])
        return rows if len(rows) == 3 and all(r.status == "failed" for r in rows) else None

    rows = cluster.wait_until(three_failed, 20, "the run and its two retries to fail")
    # A retry is inserted in the same step that finishes its predecessor: a fourth would exist by now.
    assert len(cluster.executions(task["id"])) == 3

    assert [r.retry_count for r in rows] == [0, 1, 2]
    assert {r.trigger_type for r in rows} == {"manual"} and len({r.scheduled_time for r in rows}) == 1
    assert rows[0].retry_of_id is None
    assert [r.retry_of_id for r in rows[1:]] == [rows[0].pk, rows[1].pk]
    for run in rows:
        assert run.result["error_type"] == "RuntimeError" and run.result["error_message"] == "boom"
        assert run.executor_id == cluster.executor_ids["ex-a"]
    for attempt, (previous, retry) in enumerate(zip(rows, rows[1:], strict=False), start=1):
        backoff = timedelta(seconds=BACKOFF_BASE * 2 ** (attempt - 1))
        assert retry.dispatch_after - previous.end_time >= backoff - timedelta(milliseconds=50)
        assert retry.start_time >= retry.dispatch_after
    received = [e["retry_count"] for e in cluster.executors["ex-a"].events("execute")]
    assert received == [0, 1, 2]


def test_run_past_its_timeout_is_timed_out_by_the_sweeper_and_the_executor_told_to_stop(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    # ignore_timeout: the executor does not enforce the deadline itself, so the scheduler's sweeper must.
    task = cluster.make_task("sleep.timeout", timeout_seconds=1, max_retry=0,
                             parameters={"seconds": 30, "ignore_timeout": True})
    execution_id = cluster.client.trigger_task(task["id"])["id"]

    cluster.wait_until(lambda: TaskExecution.objects.get(pk=execution_id).status == "timeout", 15,
                       "the sweeper to time the run out")
    cluster.wait_until(lambda: executor.events("stop", execution_id), 10, "the executor to receive a stop")
    cluster.wait_until(lambda: executor.events("cancelled", execution_id), 10,
                       "the handler to see the cancellation")
    cluster.wait_until(lambda: f"execution {execution_id}: already final" in executor.log_text(), 10,
                       "the executor's late report to be refused as already final")

    run = TaskExecution.objects.get(pk=execution_id)
    assert run.status == "timeout", "the late cancelled report must not overwrite the timeout"
    assert "timed out: no result within 1s" in run.logs
    assert run.end_time - run.start_time >= timedelta(seconds=1 + GRACE) - timedelta(milliseconds=50)
    assert run.end_time - run.start_time < timedelta(seconds=10)
    assert cluster.executions(task["id"]) == [run], "max_retry 0: no retry"


def test_stop_cancels_a_running_execution_and_the_handler_sees_it(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("sleep.stop", timeout_seconds=60, max_retry=3, parameters={"seconds": 30})
    execution_id = cluster.client.trigger_task(task["id"])["id"]
    cluster.wait_until(lambda: executor.events("start", execution_id), 10, "the handler to start")
    assert TaskExecution.objects.get(pk=execution_id).status == "running"

    answer = cluster.client.stop_execution(execution_id)
    assert (answer["previous_status"], answer["current_status"]) == ("running", "cancelled")

    cluster.wait_until(lambda: executor.events("cancelled", execution_id), 10,
                       "the handler to see the cancellation")
    stops = cluster.wait_until(lambda: executor.events("stop", execution_id), 10, "the stop to be journalled")
    assert stops[0]["body"]["stopping"] is True
    cluster.wait_until(lambda: f"execution {execution_id}: already final" in executor.log_text(), 10,
                       "the executor's cancelled report to be acknowledged as already final")
    run = TaskExecution.objects.get(pk=execution_id)
    assert run.status == "cancelled" and "stopped by operator" in run.logs and run.end_time is not None
    assert cluster.executions(task["id"]) == [run], "a cancelled run is never retried"


def test_skip_mode_records_skipped_fires_while_a_run_is_in_progress(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("sleep.skip", cron=EVERY_SECOND, execution_mode="skip", timeout_seconds=30,
                             parameters={"seconds": 2.2})

    def progress():
        rows = cluster.executions(task["id"])
        done = [r for r in rows if r.status == "success"]
        skipped = [r for r in rows if r.status == "skipped"]
        return rows if done and len(skipped) >= 2 else None

    rows = cluster.wait_until(progress, 20, "a finished run and two skipped fires")
    runs = [r for r in rows if r.status != "skipped"]
    skipped = [r for r in rows if r.status == "skipped"]
    for fire in skipped:
        assert "skip mode: the previous run has not finished" in fire.logs
        assert fire.start_time is None and fire.executor_id is None and fire.end_time is not None
        # A run was in progress when it fired (end_time is the executor's: its report reaches the database a
        # little later, hence the slack).
        assert any(r.scheduled_time < fire.scheduled_time
                   and (r.end_time is None or r.end_time > fire.scheduled_time - timedelta(seconds=1.5))
                   for r in runs), f"{fire} was skipped with nothing in progress"
    assert_no_overlap(rows)
    delivered = {e["execution_id"] for e in executor.events("execute")}
    assert not delivered & {r.pk for r in skipped}, "a skipped fire reached the executor"
    assert max_concurrency(executor.journal()) == 1


def test_sequential_mode_never_runs_two_at_once(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("sleep.seq", cron=EVERY_SECOND, execution_mode="sequential", timeout_seconds=30,
                             parameters={"seconds": 1.8})

    def progress():
        rows = cluster.executions(task["id"])
        done = [r for r in rows if r.status == "success"]
        started = [r for r in rows if r.start_time is not None]
        return rows if done and len(started) >= 2 and any(r.status == "skipped" for r in rows) else None

    # 1.8 s runs fired every second: the second fire waits for the first, the third finds one running
    # and one waiting and is skipped.
    rows = cluster.wait_until(progress, 20, "a finished run, the next one started and a skipped fire")
    assert_no_overlap(rows)
    assert max_concurrency(executor.journal()) == 1
    for fire in (r for r in rows if r.status == "skipped"):
        assert "sequential mode: a run is already waiting" in fire.logs
    # Runs start in fire order: the waiting fire is the next to run.
    started = [r for r in rows if r.start_time is not None]
    assert [r.scheduled_time for r in sorted(started, key=lambda r: r.start_time)] == \
        sorted(r.scheduled_time for r in started)


def test_offline_executor_gets_nothing_and_dispatch_fails_over_to_another(cluster):
    cluster.start(executors=["ex-a", "ex-b"])
    ex_a, ex_b = cluster.executors["ex-a"], cluster.executors["ex-b"]
    a_id, b_id = cluster.executor_ids["ex-a"], cluster.executor_ids["ex-b"]
    task = cluster.make_task("echo.offline", executors=["ex-a", "ex-b"], load_balance_strategy="round_robin")

    changed = cluster.client.set_executor_status(a_id, "offline", reason="e2e: taken offline")
    assert changed["current_status"] == "offline"
    first = [cluster.client.trigger_task(task["id"], {"n": n})["id"] for n in range(4)]
    cluster.wait_until(lambda: all(r.status == "success" for r in cluster.executions(task["id"])), 15,
                       "the four runs to succeed")
    assert {r.executor_id for r in cluster.executions(task["id"])} == {b_id}
    assert ex_a.events("execute") == [], "an offline executor received a dispatch"
    assert {e["execution_id"] for e in ex_b.events("execute")} == set(first)

    # Back online but its process is gone (still healthy on record): the dispatcher tries it, is refused,
    # and fails over to the other assigned executor.
    cluster.client.set_executor_status(a_id, "online")
    ex_a.end()
    second = [cluster.client.trigger_task(task["id"], {"n": n})["id"] for n in range(4, 8)]
    cluster.wait_until(lambda: all(TaskExecution.objects.get(pk=i).status == "success" for i in second), 15,
                       "the next four runs to succeed")
    assert {TaskExecution.objects.get(pk=i).executor_id for i in second} == {b_id}
    scheduler_log = cluster.schedulers["s1"].log_text()
    assert "executor ex-a refused: unreachable" in scheduler_log, "no dispatch was tried on ex-a first"


def test_sigterm_stops_the_scheduler_cleanly_and_clears_its_leader_flag(cluster):
    cluster.start(executors=[], web=False)
    node = cluster.schedulers["s1"]
    assert cluster.leaders() == ["s1"]

    node.send(signal.SIGTERM)
    assert node.wait(15) == 0
    row = SchedulerInstance.objects.get(instance_id="s1")
    assert row.is_leader is False
    log = node.log_text()
    assert "scheduler s1 stepped down: shutting down" in log and "scheduler s1 stopped" in log
