"""POST /execute/batch on the SDK: declared when registering, each run decided as its own /execute would be,
and a real exchange with the scheduler's delivery (signed, verdict per run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests

from tests.sdk.fake_scheduler import SECRET
from tests.sdk.helpers import signed_call, wait_until


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def body(execution_id: str, task_name: str = "work", **fields) -> dict:
    return {"execution_id": execution_id, "task_id": "task-1", "task_name": task_name, "parameters": {},
            "timeout_seconds": 30, "retry_count": 0, "scheduled_time": "2024-01-01T12:00:00Z", "attempt": 1,
            "accept_by": iso(datetime.now(UTC) + timedelta(seconds=5)),
            "callback_url": f"http://127.0.0.1:1/api/v1/executions/{execution_id}/callback", **fields}


def test_the_sdk_declares_its_batch_limit_when_registering(make_executor, scheduler):
    make_executor({"work": lambda ctx: None})
    make_executor({"work": lambda ctx: None}, execute_batch_limit=0)
    declared, without = scheduler.registrations[-2:]
    assert declared["execute_batch_limit"] == 100 and "execute_batch_limit" not in without


def test_each_run_of_a_batch_gets_the_verdict_its_own_execute_would(make_executor):
    started = []
    executor = make_executor({"work": lambda ctx: started.append(ctx.execution_id)}, max_workers=2)
    past = iso(datetime.now(UTC) - timedelta(seconds=1))
    items = [body("e-1"), body("e-late", accept_by=past), body("e-unknown", task_name="nope"),
             {"execution_id": "e-bad"}, body("e-2"), body("e-busy")]
    reply = signed_call(executor, "POST", "/execute/batch", {"executions": items})
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert [(r["execution_id"], r["status"]) for r in results] == [
        ("e-1", 202), ("e-late", 409), ("e-unknown", 404), ("e-bad", 400), ("e-2", 202), ("e-busy", 503)]
    assert results[1]["error"] == "expired" and results[5]["error"] == "busy"
    wait_until(lambda: sorted(started) == ["e-1", "e-2"])
    again = signed_call(executor, "POST", "/execute/batch", {"executions": [body("e-1")]}).json()["results"]
    assert again[0]["status"] == 200 and again[0]["duplicate"] is True


@pytest.mark.parametrize("payload", [{"executions": []}, {"executions": "x"}, [], {"executions": [{}] * 3}])
def test_a_batch_that_is_not_a_list_of_runs_or_too_long_is_refused_whole(make_executor, payload):
    started = []
    executor = make_executor({"work": lambda ctx: started.append(1)}, execute_batch_limit=2)
    reply = signed_call(executor, "POST", "/execute/batch", payload)
    assert reply.status_code == 400 and reply.json()["error"] == "bad_request" and started == []


def test_an_unsigned_batch_is_refused(make_executor):
    started = []
    executor = make_executor({"work": lambda ctx: started.append(1)})
    reply = requests.post(f"{executor.url}/execute/batch", json={"executions": [body("e-1")]}, timeout=5)
    assert reply.status_code == 401 and started == []


def test_the_schedulers_delivery_batches_to_a_real_sdk_executor(make_executor):
    """The scheduler's signed POST /execute/batch (executors.client) and its reading of the answer
    (scheduling.delivery), against the SDK's server: the accepted runs start, the refused one is refused."""
    from executors.client import encoded, post_soon, prepare_batch
    from scheduling.delivery import _batch_refusals

    started = []
    executor = make_executor({"work": lambda ctx: started.append(ctx.execution_id)})
    target = SimpleNamespace(secret=SECRET, instance_id=executor.instance_id)
    past = iso(datetime.now(UTC) - timedelta(seconds=1))
    items = [encoded(body("e-1")), encoded(body("e-late", accept_by=past)), encoded(body("e-2"))]
    [answer] = post_soon([prepare_batch(target, f"{executor.url}/execute/batch", items)], timeout=5)
    answer.result(10)
    ok, late, ok_too = _batch_refusals(answer, ["e-1", "e-late", "e-2"])
    assert ok is None and ok_too is None and late.answered and "409" in late.reason
    wait_until(lambda: sorted(started) == ["e-1", "e-2"])
