"""SchedulerClient against the fake scheduler: envelopes, errors, query encoding, paging, auth hooks."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime

import pytest
import requests

from scheduler_sdk import ErrorCode, SchedulerAPIError, SchedulerClient, SchedulerError, SchedulerUnavailable
from scheduler_sdk.client import callback_body
from tests.sdk.fake_scheduler import api_error, ok
from tests.sdk.helpers import registered_credentials


@pytest.fixture
def client(scheduler):
    with SchedulerClient(scheduler.url) as client:
        yield client


def test_unwraps_the_envelope_data(scheduler, client):
    scheduler.script("GET", "/api/v1/tasks/t-1", ok({"id": "t-1", "name": "nightly"}))
    assert client.get_task("t-1") == {"id": "t-1", "name": "nightly"}


def test_create_task_posts_fields_and_returns_data(scheduler, client):
    scheduler.script("POST", "/api/v1/tasks", ok({"id": "t-9", "name": "n"}, status=201))
    assert client.create_task(name="n", cron="0 * * * * *")["id"] == "t-9"
    assert scheduler.seen("POST", "/api/v1/tasks")[0].body == {"name": "n", "cron": "0 * * * * *"}


def test_api_error_carries_http_status_and_business_code(scheduler, client):
    scheduler.script("GET", "/api/v1/tasks/t-404",
                     api_error(404, ErrorCode.TASK_NOT_FOUND, "task not found", {"id": "t-404"}))

    with pytest.raises(SchedulerAPIError) as caught:
        client.get_task("t-404")

    error = caught.value
    assert (error.http_status, error.code, error.message) == (404, 10003, "task not found")
    assert error.details == {"id": "t-404"}
    assert error.error == "ERR"
    assert isinstance(error, SchedulerError)
    assert not error.retryable


def test_generic_error_uses_the_http_status_as_code(scheduler, client):
    scheduler.script("POST", "/api/v1/tasks", (400, {"code": 400, "message": "validation failed",
                                                     "details": {"cron": ["required"]}}))
    with pytest.raises(SchedulerAPIError) as caught:
        client.create_task(name="x")
    assert (caught.value.code, caught.value.details) == (400, {"cron": ["required"]})


def test_non_json_error_page_still_raises_api_error(scheduler, client):
    scheduler.script("GET", "/api/v1/health", (502, b"<html>bad gateway</html>"))
    with pytest.raises(SchedulerAPIError) as caught:
        client.health()
    assert (caught.value.http_status, caught.value.code) == (502, 502)
    assert caught.value.retryable


def test_unreachable_scheduler_raises_unavailable():
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SchedulerUnavailable):
        SchedulerClient(f"http://127.0.0.1:{port}", timeout=2).health()


def test_filters_are_encoded_for_the_api(scheduler, client):
    scheduler.script("GET", "/api/v1/executions", ok({"data": [], "total": 0, "page": 1, "page_size": 20,
                                                      "total_pages": 0}))
    client.list_executions(task_id="t-1", status=["failed", "timeout"], start_time=datetime(2024, 1, 1, tzinfo=UTC),
                           executor_id=None)
    query = scheduler.seen("GET", "/api/v1/executions")[0].query
    assert query == {"task_id": ["t-1"], "status": ["failed,timeout"], "start_time": ["2024-01-01T00:00:00+00:00"]}

    scheduler.script("GET", "/api/v1/executors", ok({"data": []}))
    client.list_executors(include_tasks=True, status="online")
    assert scheduler.seen("GET", "/api/v1/executors")[0].query == {"include_tasks": ["true"], "status": ["online"]}


def test_iter_executions_walks_every_page(scheduler, client):
    pages = [ok({"data": [{"id": "a"}, {"id": "b"}], "total": 3, "page": 1, "page_size": 2, "total_pages": 2}),
             ok({"data": [{"id": "c"}], "total": 3, "page": 2, "page_size": 2, "total_pages": 2})]
    scheduler.script("GET", "/api/v1/executions", *pages)

    ids = [row["id"] for row in client.iter_executions(page_size=2, status="success")]

    assert ids == ["a", "b", "c"]
    assert [r.query["page"] for r in scheduler.seen("GET", "/api/v1/executions")] == [["1"], ["2"]]


def test_task_and_executor_verbs_hit_their_paths(scheduler, client):
    for method, path in [("POST", "/api/v1/tasks/t-1/trigger"), ("POST", "/api/v1/tasks/t-1/executors"),
                         ("PUT", "/api/v1/executors/x-1/status"), ("POST", "/api/v1/executions/e-1/stop")]:
        scheduler.script(method, path, ok({}))
    client.trigger_task("t-1", {"day": "mon"})
    client.assign_executor("t-1", "x-1", priority=5, weight=2)
    client.set_executor_status("x-1", "maintenance", reason="upgrade")
    client.stop_execution("e-1")
    seen = [(r.method, r.path, r.body) for r in scheduler.requests]
    assert seen == [
        ("POST", "/api/v1/tasks/t-1/trigger", {"parameters": {"day": "mon"}}),
        ("POST", "/api/v1/tasks/t-1/executors", {"executor_id": "x-1", "priority": 5, "weight": 2}),
        ("PUT", "/api/v1/executors/x-1/status", {"status": "maintenance", "reason": "upgrade"}),
        ("POST", "/api/v1/executions/e-1/stop", None),
    ]


def test_callback_sends_the_contract_body(scheduler):
    client = SchedulerClient(scheduler.url, auth=registered_credentials())
    client.callback("e-1", "success", {"rows": 3}, logs="done", end_time=datetime(2024, 1, 1, 12, tzinfo=UTC))
    [(execution_id, body)] = scheduler.callbacks
    assert execution_id == "e-1"
    assert body == {"status": "success", "result": {"rows": 3}, "logs": "done",
                    "end_time": "2024-01-01T12:00:00+00:00"}


def test_callback_batch_sends_the_results_and_returns_the_verdicts(scheduler):
    client = SchedulerClient(scheduler.url, auth=registered_credentials())
    scheduler.verdict("e-2", "already_final")
    end = datetime(2024, 1, 1, 12, tzinfo=UTC)
    data = client.callback_batch([{"execution_id": "e-1", **callback_body("success", {"rows": 3}, "done", end)},
                                  {"execution_id": "e-2", **callback_body("failed", end_time=end)}])
    assert [(v["execution_id"], v["outcome"]) for v in data["results"]] == [("e-1", "applied"),
                                                                          ("e-2", "already_final")]
    [request] = scheduler.seen("POST", "/api/v1/executions/callbacks")
    assert request.body == {"results": [
        {"execution_id": "e-1", "status": "success", "result": {"rows": 3}, "logs": "done",
         "end_time": "2024-01-01T12:00:00+00:00"},
        {"execution_id": "e-2", "status": "failed", "result": None, "logs": "",
         "end_time": "2024-01-01T12:00:00+00:00"},
    ]}


def test_header_callable_can_sign_the_body(scheduler):
    def sign(request: requests.PreparedRequest) -> dict[str, str]:
        return {"X-Signature": hashlib.sha256(request.body or b"").hexdigest()}

    scheduler.script("POST", "/api/v1/tasks", ok({"id": "t-1"}, status=201))
    SchedulerClient(scheduler.url, auth=sign, headers={"X-Api-Key": "k"}).create_task(name="n")

    recorded = scheduler.seen("POST", "/api/v1/tasks")[0]
    assert recorded.headers["X-Api-Key"] == "k"
    assert recorded.headers["X-Signature"] == hashlib.sha256(b'{"name": "n"}').hexdigest()


def test_requests_auth_objects_are_accepted(scheduler):
    SchedulerClient(scheduler.url, auth=requests.auth.HTTPBasicAuth("u", "p")).health()
    assert scheduler.seen("GET", "/api/v1/health")[0].headers["Authorization"].startswith("Basic ")


def test_unsigned_callback_is_refused_with_401(scheduler, client):
    with pytest.raises(SchedulerAPIError) as raised:
        client.callback("e-1", "success")
    assert raised.value.http_status == 401 and scheduler.callbacks == []
    assert [r.path for r in scheduler.refused] == ["/api/v1/executions/e-1/callback"]


def test_api_key_is_sent_as_a_bearer_token(scheduler):
    SchedulerClient(scheduler.url, api_key="dts_abcdefgh_s3cret").health()
    assert scheduler.seen("GET", "/api/v1/health")[0].headers["Authorization"] == "Bearer dts_abcdefgh_s3cret"


def test_api_key_defaults_to_the_environment(scheduler, monkeypatch):
    monkeypatch.setenv("SCHEDULER_API_KEY", "dts_fromenv_k")
    client = SchedulerClient(scheduler.url)
    client.health()
    assert scheduler.seen("GET", "/api/v1/health")[0].headers["Authorization"] == "Bearer dts_fromenv_k"
    assert "dts_fromenv_k" not in repr(client)


def test_no_api_key_sends_no_authorization(scheduler, monkeypatch):
    monkeypatch.delenv("SCHEDULER_API_KEY", raising=False)
    SchedulerClient(scheduler.url).health()
    assert "Authorization" not in scheduler.seen("GET", "/api/v1/health")[0].headers
