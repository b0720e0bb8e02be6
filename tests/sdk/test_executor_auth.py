"""The executor's side of the signed channel: it registers with the registration key, keeps the secret it gets,
refuses every unsigned, forged, stale or replayed call (and every call before it has a secret), and signs what
it sends, afresh at each retry."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests

from scheduler_sdk import credentials
from scheduler_sdk.signing import HEADER_EXECUTOR, HEADER_NONCE, signature_headers
from tests.sdk.fake_scheduler import BATCH_PATH, EXECUTOR_ID, SECRET, api_error
from tests.sdk.helpers import dispatch, signed_call, wait_until

EXECUTE = {"execution_id": "e-1", "task_id": "t", "task_name": "job"}


def test_registration_sends_the_registration_key_as_a_bearer_token(scheduler, make_executor):
    make_executor(registration_key="reg-key-123")
    [request] = scheduler.seen("POST", "/api/v1/executors/register")
    assert request.headers["Authorization"] == "Bearer reg-key-123"


def test_the_registration_key_defaults_to_the_environment(scheduler, make_executor, monkeypatch):
    monkeypatch.setenv("SCHEDULER_REGISTRATION_KEY", "from-env")
    make_executor()
    assert scheduler.seen("POST", "/api/v1/executors/register")[0].headers["Authorization"] == "Bearer from-env"


def test_the_registration_key_goes_only_to_registration(scheduler, make_executor):
    executor = make_executor({"job": lambda ctx: None}, registration_key="reg-key-123")
    dispatch(executor, "e-1", "job")
    wait_until(lambda: scheduler.callbacks_for("e-1"))
    [callback] = scheduler.seen("POST", BATCH_PATH)
    assert "Authorization" not in callback.headers


def test_register_returns_the_executor_without_its_secret_and_logs_no_secret(scheduler, make_executor, caplog):
    caplog.set_level(logging.DEBUG)
    executor = make_executor(start=False)
    executor.start()
    try:
        assert "secret" not in executor.register()
        assert SECRET not in caplog.text
    finally:
        executor.stop(timeout=2)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/execute", EXECUTE), ("POST", "/stop", {"execution_id": "e-1"}), ("GET", "/health", None),
])
def test_unsigned_calls_are_refused(scheduler, make_executor, method, path, body):
    ran = threading.Event()
    executor = make_executor({"job": lambda ctx: ran.set()})
    response = requests.request(method, f"{executor.url}{path}", json=body, timeout=5)
    assert response.status_code == 401
    assert not ran.wait(0.2) and executor.running == 0


def test_forged_stale_and_replayed_calls_are_refused(scheduler, make_executor):
    executor = make_executor({"job": lambda ctx: None})
    assert signed_call(executor, "POST", "/execute", EXECUTE, secret="forged").status_code == 401
    assert signed_call(executor, "POST", "/execute", EXECUTE, now=time.time() - 310).status_code == 401
    assert signed_call(executor, "GET", "/health", now=time.time() + 310).status_code == 401
    good = signed_call(executor, "GET", "/health")
    assert good.status_code == 200
    replay = requests.get(f"{executor.url}/health", headers=dict(good.request.headers), timeout=5)
    assert replay.status_code == 401
    assert scheduler.callbacks == []


def test_a_signature_covers_the_path_and_query(scheduler, make_executor):
    executor = make_executor()
    response = signed_call(executor, "GET", "/health")
    headers = {name: value for name, value in response.request.headers.items() if name.startswith("X-Scheduler")}
    headers[HEADER_NONCE] = "f" * 22  # a fresh nonce, so only the changed target can be the reason
    assert requests.get(f"{executor.url}/health?x=1", headers=headers, timeout=5).status_code == 401


def test_before_registration_succeeds_every_call_is_refused(scheduler, make_executor, monkeypatch):
    monkeypatch.setattr(credentials, "FIRST_SECRET_WAIT_SECONDS", 0.1)
    scheduler.script("POST", "/api/v1/executors/register", api_error(503, 503, "down"), api_error(503, 503, "down"),
                     api_error(503, 503, "down"))
    executor = make_executor({"job": lambda ctx: None}, callback_retry=(5, 5))  # retries far apart
    assert not executor.registered
    assert dispatch(executor, "e-1", "job").status_code == 401  # signed with the secret it has not got yet
    assert signed_call(executor, "GET", "/health").status_code == 401


def test_results_logs_and_progress_are_signed_by_this_executor(scheduler, make_executor):
    def job(ctx):
        ctx.logger.info("working")
        ctx.progress(50, "half")
        time.sleep(0.3)  # long enough for a live flush of the log line and the progress

    executor = make_executor({"job": job}, live_flush_interval=0.05, progress_interval=0.05)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: scheduler.callbacks_for("e-1"))
    sent = scheduler.seen("POST", "/api/v1/executions/e-1/") + scheduler.seen("POST", BATCH_PATH)
    assert {r.path.rsplit("/", 1)[1] for r in sent} >= {"callbacks", "progress"}
    assert all(r.refusal is None and r.headers[HEADER_EXECUTOR] == EXECUTOR_ID for r in sent)


def test_a_retried_result_is_signed_again_with_a_new_nonce(scheduler, make_executor):
    scheduler.script("POST", BATCH_PATH, api_error(503, 503, "busy"))
    executor = make_executor({"job": lambda ctx: None})
    dispatch(executor, "e-1", "job")
    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    attempts = scheduler.seen("POST", BATCH_PATH)
    assert len(attempts) == 2 and attempts[0].headers[HEADER_NONCE] != attempts[1].headers[HEADER_NONCE]
    assert scheduler.refused == []


def test_a_refused_signature_makes_the_executor_register_again_and_deliver(scheduler, make_executor):
    executor = make_executor({"job": lambda ctx: None})
    scheduler.script("POST", BATCH_PATH, api_error(401, 401, "未授权", error="signature not valid: bad signature"))
    dispatch(executor, "e-1", "job")
    wait_until(lambda: len(scheduler.registrations) == 2, message="registered again after the 401")
    wait_until(lambda: executor.callback_stats["delivered"] == 1)
    assert executor._outbox.batching  # a refused signature is no sign of an older scheduler


def test_a_refused_signature_of_a_single_callback_makes_the_executor_register_again(scheduler, make_executor):
    scheduler.batch_answer = api_error(404, 404, "no route")
    executor = make_executor({"job": lambda ctx: None})
    scheduler.script("POST", "/api/v1/executions/e-1/callback", api_error(401, 401, "signature not valid"))
    dispatch(executor, "e-1", "job")
    wait_until(lambda: len(scheduler.registrations) == 2, message="registered again after the 401")
    wait_until(lambda: executor.callback_stats["delivered"] == 1)



def test_a_call_arriving_while_the_registration_answer_is_on_its_way_waits_for_the_secret():
    # The scheduler records the registration (and may dispatch) before the executor reads its answer.
    creds = credentials.ExecutorCredentials("key")
    body = b'{"execution_id": "e-1"}'
    headers = signature_headers("s3cret", "POST", "/execute", body)
    waiting = threading.Event()

    class Arrival(threading.Event):
        def wait(self, timeout=None):
            waiting.set()
            return super().wait(timeout)

    creds._secret_arrived = Arrival()
    verdict: list[bool] = []
    caller = threading.Thread(target=lambda: verdict.append(creds.verify_request("POST", "/execute", headers, body)))
    caller.start()
    assert waiting.wait(5), "the call did not wait for the secret"
    creds.accept_registration({"id": "x-1", "secret": "s3cret"})
    caller.join(timeout=5)
    assert verdict == [True]
