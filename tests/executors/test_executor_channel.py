"""What executors send (callback, log lines, progress) is accepted only signed by the executor the execution was
dispatched to: forged, stale, replayed, unsigned and wrong-executor messages answer 401 and change nothing."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import TaskExecution
from executors.channel import purge_old_nonces
from executors.models import SeenNonce
from executors.services import executor_rotate_secret
from scheduler_sdk.signing import HEADER_EXECUTOR, HEADER_SIGNATURE, signature_headers
from tests.helpers import assert_error, assert_ok

EXECUTIONS = "/api/v1/executions"
MESSAGES = {
    "callback": {"status": "success", "result": {"rows": 1}, "logs": "done"},
    "logs": {"lines": ["a line"]},
    "progress": {"percent": 50, "step": "halfway"},
}
TAMPERED = {"callback": {"status": "failed"}, "logs": {"lines": ["forged"]}, "progress": {"percent": 99}}


@pytest.fixture
def running(make_task, make_executor, make_execution):
    return make_execution(task=make_task(max_retry=0), executor=make_executor(), status="running",
                         start_time=timezone.now() - timedelta(seconds=5), logs="started")


def snapshot(execution) -> tuple:
    row = TaskExecution.objects.get(pk=execution.pk)
    return (row.status, row.result, row.logs, row.end_time, row.progress_percent, row.progress_step,
            row.executor_id)


def path_of(execution, kind: str) -> str:
    return f"{EXECUTIONS}/{execution.pk}/{kind}"


def assert_applied(response) -> None:
    status, body = response
    assert (status, body["code"]) == (200, 200), body


def assert_refused(response, path: str, reason: str) -> None:
    error = assert_error(*response, 401, 401, path=path)
    assert reason in error["error"], error["error"]


@pytest.fixture(params=list(MESSAGES))
def kind(request) -> str:
    return request.param


def test_a_message_signed_by_the_dispatched_executor_is_applied(signed, running, kind):
    before = snapshot(running)
    assert_applied(signed.post(path_of(running, kind), MESSAGES[kind]))
    assert snapshot(running) != before


def test_an_unsigned_message_is_refused_even_with_an_admin_api_key(api, anon_api, running, kind):
    before = snapshot(running)
    for client in (api, anon_api):
        path = path_of(running, kind)
        assert_refused(client.post(path, MESSAGES[kind]), path, f"missing {HEADER_EXECUTOR}")
    assert snapshot(running) == before


def test_a_forged_signature_is_refused(signed, running, kind):
    before = snapshot(running)
    path = path_of(running, kind)
    assert_refused(signed.post(path, MESSAGES[kind], secret="guessed-secret"), path, "bad signature")
    assert snapshot(running) == before


def test_a_body_changed_after_signing_is_refused(signed, running, kind):
    path = path_of(running, kind)
    signature = signature_headers(running.executor.secret, "POST", path, json.dumps(MESSAGES[kind]).encode(),
                                  executor_id=running.executor_id)
    before = snapshot(running)
    signed.last_request = (path, json.dumps(TAMPERED[kind]), "application/json")
    assert_refused(signed.replay(signature), path, "bad signature")
    assert snapshot(running) == before


@pytest.mark.parametrize("age", [310, -310])  # whole seconds on the wire: keep clear of the edge
def test_a_stale_message_is_refused(signed, running, kind, age):
    before = snapshot(running)
    path = path_of(running, kind)
    assert_refused(signed.post(path, MESSAGES[kind], now=time.time() - age), path, "stale")
    assert snapshot(running) == before


def test_a_replayed_message_is_refused(signed, running):
    path = path_of(running, "logs")
    assert_applied(signed.post(path, MESSAGES["logs"]))
    before = snapshot(running)
    assert_refused(signed.replay(), path, "replayed")
    assert snapshot(running) == before


def test_a_callback_replayed_after_it_was_applied_changes_nothing(signed, running):
    # The callback records its nonce in the transaction that applies the result (one COMMIT, not two).
    path = path_of(running, "callback")
    assert_applied(signed.post(path, MESSAGES["callback"]))
    applied = snapshot(running)
    assert applied[0] == "success"
    assert_refused(signed.replay(), path, "replayed")
    assert snapshot(running) == applied
    assert SeenNonce.objects.count() == 1


def test_a_refused_callback_still_spends_its_nonce(signed, running):
    path = path_of(running, "callback")
    assert_applied(signed.post(path, MESSAGES["callback"]))
    assert_error(*signed.post(path, {"status": "failed"}), 409, 30002)  # authentic, but the run is final
    assert_refused(signed.replay(), path, "replayed")
    assert SeenNonce.objects.count() == 2


def test_a_callback_that_crashes_records_neither_its_result_nor_its_nonce(signed, running, monkeypatch):
    from executions import services

    apply_callback = services.apply_callback

    def crash_after_applying(**kwargs):
        apply_callback(**kwargs)
        raise RuntimeError("the process died before COMMIT")

    monkeypatch.setattr(services, "apply_callback", crash_after_applying)
    before = snapshot(running)
    path = path_of(running, "callback")
    assert_error(*signed.post(path, MESSAGES["callback"]), 500, 500)
    assert snapshot(running) == before
    assert not SeenNonce.objects.exists()


def test_a_message_from_another_executor_is_refused(signed, running, make_executor, kind):
    before = snapshot(running)
    path = path_of(running, kind)
    assert_refused(signed.post(path, MESSAGES[kind], executor=make_executor()), path, "not dispatched to this")
    assert snapshot(running) == before


def test_a_message_naming_another_executor_but_signed_with_ours_is_refused(signed, running, make_executor, kind):
    other = make_executor()
    path = path_of(running, kind)
    signed.post(path, MESSAGES[kind], executor=other)  # refused: not dispatched to `other`
    before = snapshot(running)
    # The dispatched executor's id with the other's signature: verified against the dispatched one's secret.
    forged = {**signed.last_headers, HEADER_EXECUTOR: running.executor_id}
    assert_refused(signed.replay(forged), path, "bad signature")
    assert snapshot(running) == before


def test_a_message_naming_an_unknown_executor_is_refused(signed, running):
    path = path_of(running, "callback")
    signed.post(path, MESSAGES["callback"], secret="whatever")
    assert_refused(signed.replay({**signed.last_headers, HEADER_EXECUTOR: "no-such-executor"}), path,
                   "unknown executor")
    assert snapshot(running)[0] == "running"


def test_an_execution_without_an_executor_accepts_no_message(signed, make_execution, make_executor):
    orphan = make_execution(status="running", start_time=timezone.now())
    path = path_of(orphan, "callback")
    assert_refused(signed.post(path, MESSAGES["callback"], executor=make_executor()), path, "not dispatched")
    assert TaskExecution.objects.get(pk=orphan.pk).status == "running"


def test_a_result_sent_twice_with_fresh_signatures_is_applied_once(signed, running):
    path = path_of(running, "callback")
    assert_applied(signed.post(path, {"status": "success", "result": {"n": 1}, "logs": "first"}))
    applied = snapshot(running)
    # The executor re-sends (its answer got lost): a new nonce, so it is authentic, but the run is final.
    assert_error(*signed.post(path, {"status": "failed", "result": {"n": 2}, "logs": "second"}), 409, 30002)
    assert snapshot(running) == applied


def test_a_rotated_secret_invalidates_the_old_one(signed, running):
    old = running.executor
    executor_rotate_secret(executor_id=old.pk)
    path = path_of(running, "progress")
    assert_refused(signed.post(path, MESSAGES["progress"], executor=old), path, "bad signature")
    assert_applied(signed.post(path, MESSAGES["progress"]))  # signed with the current secret


def test_a_signature_header_without_the_v1_prefix_is_refused(signed, running):
    path = path_of(running, "callback")
    signed.post(path, MESSAGES["callback"], secret="x")
    headers = {**signed.last_headers, HEADER_SIGNATURE: signed.last_headers[HEADER_SIGNATURE].removeprefix("v1=")}
    assert_refused(signed.replay(headers), path, "bad signature")


def test_nonces_older_than_twice_the_window_are_purged(signed, running):
    assert_applied(signed.post(path_of(running, "logs"), MESSAGES["logs"]))
    [old] = SeenNonce.objects.all()
    SeenNonce.objects.filter(pk=old.pk).update(seen_at=timezone.now() - timedelta(seconds=601))
    recent = SeenNonce.objects.create(executor=running.executor, nonce="r" * 22,
                                      seen_at=timezone.now() - timedelta(seconds=599))
    assert purge_old_nonces(timezone.now()) == 1
    assert list(SeenNonce.objects.values_list("pk", flat=True)) == [recent.pk]


def test_reading_logs_still_needs_a_user_and_a_signature_is_not_one(anon_api, api, signed, running):
    path = path_of(running, "logs")
    assert_error(*anon_api.get(path), 401)
    assert_ok(*api.get(path))
    signed.post(path, MESSAGES["logs"])
    assert_error(*signed.api.get(path, **{"HTTP_" + name.upper().replace("-", "_"): value
                                          for name, value in signed.last_headers.items()}), 401)


def test_an_oversize_signed_body_answers_413_not_500(signed, running, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    path = path_of(running, "logs")
    assert_error(*signed.post(path, {"lines": ["x" * 8000, "y" * 8000]}), 413, 413)
    assert snapshot(running)[2] == "started"
