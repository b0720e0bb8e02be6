"""The SDK's side of the lease protocol: accept-by and superseded attempts refused, renewals and revocations,
status from the journal, reconciliation at registration, the durable outbox, paced re-registrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler_sdk import ExecutionCancelled
from scheduler_sdk.outbox import OutboxFile, Report, RetryPolicy
from scheduler_sdk.registration import RegistrationLoop
from tests.sdk.fake_scheduler import api_error, ok
from tests.sdk.helpers import dispatch, signed_call, wait_until

LEASES = "/api/v1/executions/leases"


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def blocking_handler(started: list, cancelled: list):
    def run(ctx):
        started.append(ctx.execution_id)
        try:
            while True:
                ctx.sleep(0.02)
        except ExecutionCancelled:
            cancelled.append(ctx.execution_id)
            raise
    return run


def test_a_dispatch_read_after_its_accept_by_is_refused_and_never_started(make_executor):
    started = []
    executor = make_executor({"work": lambda ctx: started.append(ctx.execution_id)})
    past = datetime.now(UTC) - timedelta(seconds=1)
    reply = dispatch(executor, "e-late", "work", attempt=1, accept_by=iso(past))
    assert reply.status_code == 409 and reply.json()["error"] == "expired"
    reply = dispatch(executor, "e-on-time", "work", attempt=1, accept_by=iso(datetime.now(UTC) + timedelta(seconds=5)))
    assert reply.status_code == 202
    wait_until(lambda: started == ["e-on-time"])


def test_an_attempt_older_than_one_seen_is_refused(make_executor):
    started, cancelled = [], []
    executor = make_executor({"work": blocking_handler(started, cancelled)})
    soon = iso(datetime.now(UTC) + timedelta(seconds=5))
    assert dispatch(executor, "e-1", "work", attempt=2, accept_by=soon).status_code == 202
    reply = dispatch(executor, "e-1", "work", attempt=1, accept_by=soon)
    assert reply.status_code == 409 and reply.json()["error"] == "superseded"
    assert dispatch(executor, "e-1", "work", attempt=2, accept_by=soon).json()["duplicate"] is True
    wait_until(lambda: started == ["e-1"])


def test_held_runs_are_renewed_in_one_request_and_a_revoked_one_is_cancelled(make_executor, scheduler):
    started, cancelled = [], []
    scheduler.script("POST", LEASES, ok({"renewed": ["e-1"], "revoked": ["e-2"], "lease_seconds": 15,
                                         "renew_seconds": 0.1}))
    executor = make_executor({"work": blocking_handler(started, cancelled)}, lease_renew_interval=0.1)
    soon = iso(datetime.now(UTC) + timedelta(seconds=5))
    for execution_id in ("e-1", "e-2"):
        assert dispatch(executor, execution_id, "work", attempt=1, accept_by=soon).status_code == 202
    wait_until(lambda: len(started) == 2)
    wait_until(lambda: cancelled == ["e-2"], message="the revoked run's handler sees the cancellation")
    first = scheduler.seen("POST", LEASES)[0]
    assert sorted(run["execution_id"] for run in first.body["executions"]) == ["e-1", "e-2"]
    wait_until(lambda: scheduler.seen("POST", LEASES)[-1].body["executions"] == [{"execution_id": "e-1", "attempt": 1}],
               message="later renewals name only the run still held")
    assert "e-1" not in cancelled


def test_status_answers_from_the_executors_journal(make_executor, scheduler):
    started, cancelled = [], []
    scheduler.batch_answer = api_error(503, 503)  # results stay in the outbox
    executor = make_executor({"work": blocking_handler(started, cancelled), "quick": lambda ctx: {"n": 1}})
    soon = iso(datetime.now(UTC) + timedelta(seconds=5))
    dispatch(executor, "e-running", "work", attempt=3, accept_by=soon)
    dispatch(executor, "e-done", "quick", attempt=1, accept_by=soon)
    wait_until(lambda: started and executor.pending_callbacks == 1)
    body = {"executions": [{"execution_id": pk, "attempt": 1} for pk in ("e-running", "e-done", "e-other")]}
    items = signed_call(executor, "POST", "/status", body).json()["executions"]
    answer = {item["execution_id"]: item for item in items}
    assert answer["e-running"] == {"execution_id": "e-running", "state": "running", "attempt": 3}
    assert answer["e-done"]["state"] == "finished" and answer["e-done"]["status"] == "success"
    assert answer["e-done"]["result"] == {"n": 1} and answer["e-done"]["end_time"]
    assert answer["e-other"]["state"] == "unknown"


def test_registration_reports_the_runs_held_and_stops_those_answered(make_executor, scheduler):
    started, cancelled = [], []
    executor = make_executor({"work": blocking_handler(started, cancelled)})
    [first] = scheduler.registrations
    assert first["held_executions"] == [] and first["held_as_of"]
    dispatch(executor, "e-1", "work", attempt=1, accept_by=iso(datetime.now(UTC) + timedelta(seconds=5)))
    wait_until(lambda: started)
    scheduler.script("POST", "/api/v1/executors/register",
                     ok({"id": "executor-1", "secret": scheduler.secret, "stop_executions": ["e-1"]}))
    executor.register()
    assert scheduler.registrations[-1]["held_executions"] == [{"execution_id": "e-1", "attempt": 1}]
    wait_until(lambda: cancelled == ["e-1"])


def test_results_wait_in_the_outbox_file_across_a_restart(make_executor, scheduler, tmp_path):
    path = tmp_path / "outbox.json"
    scheduler.batch_answer = api_error(503, 503)
    executor = make_executor({"quick": lambda ctx: {"n": 1}}, outbox_path=path)
    dispatch(executor, "e-1", "quick")
    wait_until(lambda: path.exists() and "e-1" in unsettled_in(path))
    executor.stop(timeout=0.5)  # the scheduler still refuses: the result stays in the file
    scheduler.batch_answer = None
    make_executor({"quick": lambda ctx: None}, outbox_path=path)
    wait_until(lambda: scheduler.callbacks_for("e-1"), message="the restarted executor delivers it")
    wait_until(lambda: not unsettled_in(path), message="settled in the file too")


def unsettled_in(path) -> set[str]:
    """The execution ids the outbox file still holds unsettled (read without rewriting it)."""
    live: dict = {}
    for line in path.read_text().splitlines():
        OutboxFile(path)._read(line, live)
    return set(live)


def test_the_outbox_file_is_compacted_as_reports_settle(tmp_path):
    path = tmp_path / "outbox.json"
    file = OutboxFile(path)
    report = Report("e-0", "success", None, "", datetime(2026, 1, 1, tzinfo=UTC))
    for _ in range(3000):
        file.put(report)
        file.done([report.execution_id])
        file.compact_if_due([])
    assert len(path.read_text().splitlines()) <= OutboxFile.COMPACT_AFTER_LINES + 1
    file.put(Report("e-live", "success", {"n": 1}, "log", datetime(2026, 1, 1, tzinfo=UTC), attempt=2))
    [left] = OutboxFile(path).load()
    assert (left.execution_id, left.result, left.attempt) == ("e-live", {"n": 1}, 2)


def test_stopping_tells_the_scheduler_at_once(make_executor, scheduler):
    executor = make_executor()
    executor.stop(timeout=1)
    assert scheduler.seen("POST", "/api/v1/executors/shutdown")


def test_re_registrations_asked_by_refusals_are_paced():
    now = [0.0]
    loop = RegistrationLoop(lambda: None, lambda: None, heartbeat_interval=60, retry=RetryPolicy(1, 30, jitter=0),
                            on_recovered=lambda: None, clock=lambda: now[0])
    loop.mark_registered()
    honoured = 0
    for step in range(100):  # a refusal every 50 ms for 5 s
        now[0] = step * 0.05
        loop.request_reregistration()
        if not loop.registered:
            honoured += 1
            loop.mark_registered()
    assert honoured == 3  # at 0 s, then after 1 s and 2 s of backoff (at 1 and 3 s)


def test_status_of_a_run_whose_result_left_the_outbox_is_finished_without_the_result(make_executor, scheduler):
    executor = make_executor({"quick": lambda ctx: {"n": 1}})
    dispatch(executor, "e-1", "quick", attempt=2, accept_by=iso(datetime.now(UTC) + timedelta(seconds=5)))
    wait_until(lambda: scheduler.callbacks_for("e-1") and executor.pending_callbacks == 0)
    [entry] = signed_call(executor, "POST", "/status", {"executions": [{"execution_id": "e-1"}]}).json()["executions"]
    assert (entry["state"], entry["status"], entry["attempt"]) == ("finished", "success", 2)
    assert "result" not in entry and entry["end_time"]
