"""Result delivery and registration across scheduler outages, restarts and refusals."""

from __future__ import annotations

import threading

import pytest

from scheduler_sdk import ErrorCode, SchedulerAPIError
from tests.sdk.fake_scheduler import BATCH_PATH, OLDER_SCHEDULER, api_error
from tests.sdk.helpers import dispatch, wait_until


def test_registration_describes_the_executor(scheduler, make_executor):
    tasks = [{"task_name": "echo", "cron": "0 * * * * *", "timeout": 30}]
    executor = make_executor({"echo": lambda ctx: ctx.parameters}, tasks=tasks, metadata={"region": "lab"})

    [body] = scheduler.registrations

    assert body["base_url"] == executor.url
    assert body["health_check_url"] == f"{executor.url}/health"
    assert (body["name"], body["instance_id"]) == (executor.name, executor.instance_id)
    assert body["tasks"] == tasks
    assert body["metadata"]["region"] == "lab"
    assert body["metadata"]["capacity"] == 4
    assert executor.executor_id == "executor-1"
    assert executor.registered


def test_result_survives_a_scheduler_restart_and_is_delivered_once(scheduler, make_executor):
    release = threading.Event()
    executor = make_executor({"job": lambda ctx: release.wait(10) and {"done": True}})
    dispatch(executor, "e-1", "job")
    wait_until(lambda: executor.running == 1)

    scheduler.stop()
    release.set()  # the result is ready while the scheduler is down
    wait_until(lambda: executor.callback_stats["retry"] >= 2, message="callback retried while down")
    assert executor.pending_callbacks == 1
    scheduler.start()  # same port

    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "success"
    assert body["result"] == {"done": True}
    wait_until(lambda: executor.pending_callbacks == 0)
    assert executor.callback_stats["delivered"] == 1
    assert len(scheduler.callbacks_for("e-1")) == 1


# --- results in batches (POST /api/v1/executions/callbacks) ------------------------------------------------


def test_a_result_goes_to_the_batch_endpoint(scheduler, make_executor):
    executor = make_executor({"job": lambda ctx: {"ok": 1}})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    assert scheduler.batches == [["e-1"]]
    [body] = scheduler.callbacks_for("e-1")
    assert (body["status"], body["result"]) == ("success", {"ok": 1})


def test_a_batch_refused_for_now_is_sent_again(scheduler, make_executor):
    scheduler.script("POST", BATCH_PATH, api_error(503, 503, "database unavailable"))
    executor = make_executor({"job": lambda ctx: {"ok": 1}})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    assert executor.callback_stats["retry"] == 1
    assert len(scheduler.callbacks_for("e-1")) == 2


def test_an_already_final_verdict_is_acknowledged_without_retry(scheduler, make_executor):
    scheduler.verdict("e-1", "already_final")
    executor = make_executor({"job": lambda ctx: None})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["already_final"] == 1)
    assert executor.pending_callbacks == 0 and executor.callback_stats["retry"] == 0


@pytest.mark.parametrize("answer", [api_error(404, 404, "no route"), api_error(405, 405, "not allowed"),
                                    OLDER_SCHEDULER], ids=["404", "405", "older-401"])
def test_a_scheduler_without_batches_gets_one_callback_per_result(scheduler, make_executor, answer):
    scheduler.batch_answer = answer
    executor = make_executor({"job": lambda ctx: None})
    dispatch(executor, "e-1", "job")
    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    dispatch(executor, "e-2", "job")
    wait_until(lambda: executor.callback_stats["delivered"] == 2)

    assert [len(scheduler.seen("POST", f"/api/v1/executions/e-{n}/callback")) for n in (1, 2)] == [1, 1]
    assert len(scheduler.seen("POST", BATCH_PATH)) == 1  # asked once, then no more
    assert executor.callback_stats["retry"] == 0
    assert len(scheduler.registrations) == 1  # an older scheduler's 401 is not a refused signature


# --- one callback per result (a scheduler without batches) -------------------------------------------------


@pytest.fixture
def older(scheduler):
    scheduler.batch_answer = api_error(404, 404, "no route")
    return scheduler


def test_callback_retried_while_the_scheduler_answers_503(older, make_executor):
    older.script("POST", "/api/v1/executions/e-1/callback",
                 api_error(503, 503, "database unavailable"), api_error(503, 503, "database unavailable"))
    executor = make_executor({"job": lambda ctx: {"ok": 1}})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    assert len(older.callbacks_for("e-1")) == 3


def test_already_final_409_is_acknowledged_without_retry(older, make_executor):
    older.script("POST", "/api/v1/executions/e-1/callback",
                 api_error(409, ErrorCode.EXECUTION_STATE_FORBIDS, "execution already final"))
    executor = make_executor({"job": lambda ctx: {"ok": 1}})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["already_final"] == 1)
    assert executor.pending_callbacks == 0
    assert executor.callback_stats["retry"] == 0
    assert len(older.callbacks_for("e-1")) == 1


def test_unknown_execution_404_is_given_up(older, make_executor):
    older.script("POST", "/api/v1/executions/e-1/callback",
                 api_error(404, ErrorCode.EXECUTION_NOT_FOUND, "execution not found"))
    executor = make_executor({"job": lambda ctx: None})
    dispatch(executor, "e-1", "job")

    wait_until(lambda: executor.callback_stats["dropped"] == 1)
    assert executor.pending_callbacks == 0
    assert len(older.callbacks_for("e-1")) == 1


def test_re_registers_after_a_scheduler_outage(scheduler, make_executor):
    executor = make_executor({"job": lambda ctx: None})
    assert len(scheduler.registrations) == 1

    scheduler.stop()
    wait_until(lambda: not executor.scheduler_reachable, message="outage noticed by the health probe")
    scheduler.start()

    wait_until(lambda: len(scheduler.registrations) == 2)
    assert scheduler.registrations[1]["instance_id"] == executor.instance_id
    wait_until(lambda: executor.registered, message="the answer taken in")  # it lands after the request


def test_start_with_the_scheduler_down_registers_when_it_comes_up(scheduler, make_executor):
    scheduler.stop()
    executor = make_executor({"job": lambda ctx: None})
    assert not executor.registered

    scheduler.start()

    wait_until(lambda: executor.registered and scheduler.registrations)


def test_registration_rejected_at_start_raises_with_the_business_code(scheduler, make_executor):
    scheduler.script("POST", "/api/v1/executors/register",
                     api_error(409, ErrorCode.EXECUTOR_INSTANCE_TAKEN, "instance id taken"))
    executor = make_executor({"job": lambda ctx: None}, start=False)

    with pytest.raises(SchedulerAPIError) as caught:
        executor.start()

    assert caught.value.code == ErrorCode.EXECUTOR_INSTANCE_TAKEN
    assert caught.value.http_status == 409


def test_stop_cancels_running_work_and_flushes_its_result(scheduler, make_executor):
    executor = make_executor({"loop": lambda ctx: ctx.cancelled.wait(10)}, start=False).start()
    dispatch(executor, "e-1", "loop")
    wait_until(lambda: executor.running == 1)

    executor.stop(timeout=3)

    [body] = scheduler.callbacks_for("e-1")
    assert body["status"] == "cancelled"
    assert "executor shutting down" in body["logs"]
