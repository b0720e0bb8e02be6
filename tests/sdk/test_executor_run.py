"""Executor dispatch over real HTTP: accept, run, report; failures, timeouts, stops, capacity, idempotency."""

from __future__ import annotations

import json
import threading

import requests

from scheduler_sdk import ExecutionCancelled, ExecutionContext
from scheduler_sdk.context import LogTail
from scheduler_sdk.signing import signature_headers
from tests.sdk.fake_scheduler import SECRET
from tests.sdk.helpers import dispatch, signed_call, stop_execution, wait_until


def test_success_is_accepted_then_reported_with_result_and_logs(scheduler, make_executor):
    seen: list[ExecutionContext] = []

    def greet(ctx: ExecutionContext) -> dict:
        seen.append(ctx)
        ctx.logger.info("greeting %s", ctx.parameters["who"])
        return {"greeting": f"hello {ctx.parameters['who']}"}

    executor = make_executor({"greet": greet})
    response = dispatch(executor, "e-1", "greet", parameters={"who": "ada"}, retry_count=2)

    assert response.status_code == 202
    assert response.json()["execution_id"] == "e-1"
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "success"
    assert body["result"] == {"greeting": "hello ada"}
    assert "greeting ada" in body["logs"]
    assert body["end_time"].endswith("+00:00")
    ctx = seen[0]
    assert (ctx.task_id, ctx.task_name, ctx.retry_count, ctx.timeout_seconds) == ("task-1", "greet", 2, 30.0)
    assert ctx.scheduled_time.isoformat() == "2024-01-01T12:00:00+00:00"


def test_non_dict_result_is_wrapped_as_value(scheduler, make_executor):
    executor = make_executor({"count": lambda ctx: 42})
    dispatch(executor, "e-1", "count")
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["result"] == {"value": 42}


def test_exception_is_reported_failed_with_type_message_and_traceback(scheduler, make_executor):
    def broken(ctx: ExecutionContext) -> None:
        raise KeyError("missing-column")

    executor = make_executor({"broken": broken})
    dispatch(executor, "e-1", "broken")

    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "failed"
    assert body["result"]["error_type"] == "KeyError"
    assert "missing-column" in body["result"]["error"]
    assert "Traceback (most recent call last)" in body["logs"]


def test_unserialisable_result_fails_the_execution(scheduler, make_executor):
    executor = make_executor({"odd": lambda ctx: {"when": object()}})
    dispatch(executor, "e-1", "odd")
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "failed"
    assert "not JSON-serializable" in body["result"]["error"]


def test_overrunning_handler_is_reported_timeout_and_its_late_result_discarded(scheduler, make_executor):
    release = threading.Event()
    cancelled_seen = threading.Event()

    def stubborn(ctx: ExecutionContext) -> dict:
        release.wait(10)  # ignores cancellation on purpose
        if ctx.cancelled.is_set():
            cancelled_seen.set()
        return {"late": True}

    executor = make_executor({"stubborn": stubborn})
    dispatch(executor, "e-1", "stubborn", timeout_seconds=0.2)

    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "timeout"
    assert body["result"]["timeout_seconds"] == 0.2
    assert "timed out" in body["logs"]
    assert executor.running == 1  # the abandoned thread still holds its slot
    release.set()
    wait_until(lambda: executor.running == 0)
    assert cancelled_seen.is_set()
    assert wait_until(lambda: executor.pending_callbacks == 0)
    assert len(scheduler.callbacks_for("e-1")) == 1


def test_stop_cancels_a_cooperative_handler(scheduler, make_executor):
    started = threading.Event()

    def loop(ctx: ExecutionContext) -> None:
        started.set()
        while True:
            ctx.sleep(0.02)

    executor = make_executor({"loop": loop})
    dispatch(executor, "e-1", "loop")
    assert started.wait(5)

    response = stop_execution(executor, "e-1")

    assert response.status_code == 200
    assert response.json()["stopping"] is True
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "cancelled"
    assert "stop requested" in body["logs"]


def test_stop_reports_cancelled_after_grace_when_the_handler_ignores_it(scheduler, make_executor):
    release = threading.Event()
    executor = make_executor({"deaf": lambda ctx: release.wait(10)}, stop_grace=0.1)
    dispatch(executor, "e-1", "deaf")
    wait_until(lambda: executor.running == 1)

    stop_execution(executor, "e-1")

    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "cancelled"
    release.set()


def test_stop_of_unknown_execution_is_404(make_executor):
    executor = make_executor({"noop": lambda ctx: None})
    response = stop_execution(executor, "nope")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_execution"


def test_check_cancelled_raises_once_cancelled():
    ctx = ExecutionContext(parameters={"a": 1})
    ctx.check_cancelled()
    ctx.cancelled.set()
    try:
        ctx.check_cancelled()
    except ExecutionCancelled:
        pass
    else:
        raise AssertionError("check_cancelled did not raise")


def test_full_pool_answers_503_without_queueing(scheduler, make_executor):
    release = threading.Event()
    executor = make_executor({"block": lambda ctx: release.wait(10)}, max_workers=1)
    assert dispatch(executor, "e-1", "block").status_code == 202

    busy = dispatch(executor, "e-2", "block")

    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    release.set()
    wait_until(lambda: scheduler.callbacks_for("e-1") and executor.running == 0)
    assert dispatch(executor, "e-3", "block").status_code == 202
    assert scheduler.callbacks_for("e-2") == []


def test_unknown_task_is_404_and_nothing_runs(scheduler, make_executor):
    executor = make_executor({"known": lambda ctx: None})
    response = dispatch(executor, "e-1", "unknown")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_task"
    assert executor.running == 0
    assert scheduler.callbacks == []


def test_invalid_body_is_400(make_executor):
    executor = make_executor({"known": lambda ctx: None})
    assert dispatch(executor, "e-1", "known", parameters=[1, 2]).status_code == 400
    assert signed_call(executor, "POST", "/execute", raw=b"{not json").status_code == 400


def test_duplicate_execution_id_runs_once(scheduler, make_executor):
    release = threading.Event()
    calls: list[str] = []

    def once(ctx: ExecutionContext) -> None:
        calls.append(ctx.execution_id)
        release.wait(10)

    executor = make_executor({"once": once})
    assert dispatch(executor, "e-1", "once").status_code == 202
    again = dispatch(executor, "e-1", "once")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    release.set()
    wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert dispatch(executor, "e-1", "once").json()["status"] == "success"  # still known after it ended
    wait_until(lambda: executor.running == 0 and executor.pending_callbacks == 0)
    assert calls == ["e-1"]
    assert len(scheduler.callbacks_for("e-1")) == 1


def test_health_reports_load_and_identity(make_executor):
    release = threading.Event()
    executor = make_executor({"block": lambda ctx: release.wait(10)}, max_workers=3)
    dispatch(executor, "e-1", "block")
    wait_until(lambda: executor.running == 1)

    body = signed_call(executor, "GET", "/health").json()

    assert body["status"] == "healthy"
    assert (body["running"], body["capacity"]) == (1, 3)
    assert (body["name"], body["instance_id"]) == (executor.name, executor.instance_id)
    release.set()


def test_log_tail_keeps_the_end_and_marks_truncation():
    tail = LogTail(max_bytes=100)
    for i in range(50):
        tail.append(f"line {i:02d}")
    text = tail.text()
    assert text.startswith("[... ")
    assert "truncated" in text.splitlines()[0]
    assert text.endswith("line 49")
    assert len(text.split("\n", 1)[1].encode()) <= 100


def test_logs_sent_with_a_result_are_capped(scheduler, make_executor):
    def chatty(ctx: ExecutionContext) -> None:
        for i in range(2000):
            ctx.logger.info("noise %04d %s", i, "x" * 50)

    executor = make_executor({"chatty": chatty}, max_log_bytes=4096)
    dispatch(executor, "e-1", "chatty")
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert len(body["logs"].encode()) < 4096 + 100
    assert "truncated" in body["logs"].splitlines()[0]
    assert "finished: success" in body["logs"]


def test_verify_request_hook_can_refuse_more_calls_but_never_accept_unsigned_ones(scheduler, make_executor):
    def wants_token(method: str, target: str, headers: dict, body: bytes) -> bool:
        return target == "/health" or headers.get("X-Token") == "good"

    executor = make_executor({"job": lambda ctx: None}, verify_request=wants_token)
    body = {"execution_id": "e-2", "task_name": "job"}

    assert dispatch(executor, "e-1", "job").status_code == 401  # signed, but the hook refuses
    assert requests.post(f"{executor.url}/execute", headers={"X-Token": "good"}, json=body,
                         timeout=5).status_code == 401  # the hook accepts, but unsigned
    assert signed_call(executor, "GET", "/health").status_code == 200
    raw = json.dumps(body).encode()
    headers = {"X-Token": "good", "Content-Type": "application/json",
               **signature_headers(SECRET, "POST", "/execute", raw)}
    assert requests.post(f"{executor.url}/execute", data=raw, headers=headers, timeout=5).status_code == 202
    wait_until(lambda: scheduler.callbacks_for("e-2"))
    assert scheduler.callbacks_for("e-1") == []
