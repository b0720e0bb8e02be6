"""Live executions in the SDK: ctx.log() lines and ctx.progress() reports reach the scheduler while the
handler runs, without blocking it and without storing a line twice; the client's live methods."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler_sdk import ExecutionContext, Executor, SchedulerAPIError, SchedulerClient
from scheduler_sdk.live import MAX_LINE_BYTES, api_lines, take_batch
from tests.sdk.fake_scheduler import Answer, FakeScheduler, Recorded, api_error, ok
from tests.sdk.helpers import dispatch, registered_credentials, wait_until


class LiveFakeScheduler(FakeScheduler):
    """The fake scheduler with the live endpoints: it keeps the lines and progress it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.log_delay = 0.0
        self.final: set[str] = set()  # executions whose appends answer 409/30002

    def _default(self, recorded: Recorded) -> Answer:
        execution_id = recorded.path.split("/")[4] if recorded.path.startswith("/api/v1/executions/") else ""
        if recorded.method == "POST" and recorded.path.endswith("/logs"):
            time.sleep(self.log_delay)
            if execution_id in self.final:
                return api_error(409, 30002, "执行状态不允许此操作")
            lines = recorded.body["lines"]
            return ok({"appended": len(lines), "total_chars": 0, "truncated": False})
        if recorded.method == "POST" and recorded.path.endswith("/progress"):
            return ok({"execution_id": execution_id, "status": "running", "progress_percent": recorded.body["percent"],
                       "progress_step": recorded.body.get("step", ""), "progress_updated_at": None})
        return super()._default(recorded)

    def streamed_lines(self, execution_id: str) -> list[str]:
        return [line for r in self.seen("POST", f"/api/v1/executions/{execution_id}/logs") for line in r.body["lines"]]

    def progress_reports(self, execution_id: str) -> list[dict[str, Any]]:
        return [r.body for r in self.seen("POST", f"/api/v1/executions/{execution_id}/progress")]


@pytest.fixture
def scheduler() -> Iterator[LiveFakeScheduler]:
    fake = LiveFakeScheduler().start()
    yield fake
    fake.stop()


def messages(lines: list[str]) -> list[str]:
    """The message part of LogTail lines (``<time> <LEVEL> <message>``)."""
    return [line.split(" ", 2)[2] for line in lines if line.count(" ") >= 2]


# --- log streaming --------------------------------------------------------------------------------------------


def test_log_lines_reach_the_scheduler_while_the_handler_runs(scheduler, make_executor):
    release = threading.Event()

    def job(ctx: ExecutionContext) -> dict:
        ctx.log("downloading part 1")
        ctx.log("downloading part 2")
        release.wait(10)
        ctx.log("all parts done")
        return {"ok": True}

    executor = make_executor({"job": job}, live_flush_interval=0.05)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: "downloading part 2" in messages(scheduler.streamed_lines("e-1")))
    assert scheduler.callbacks_for("e-1") == []  # still running: these came over the live stream
    release.set()
    [callback] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    streamed = messages(scheduler.streamed_lines("e-1"))
    sent_with_result = messages(callback["logs"].split("\n")) if callback["logs"] else []
    everything = streamed + sent_with_result
    # Each line reaches the scheduler exactly once, in order, whichever way it travelled.
    assert [m for m in everything if m.startswith(("downloading", "all parts"))] == [
        "downloading part 1", "downloading part 2", "all parts done"]
    assert len(everything) == len(set(everything))
    assert any(m.startswith("finished: success") for m in everything)


def test_logging_never_waits_for_a_slow_scheduler(scheduler, make_executor):
    # Slow enough that a blocking ctx.log would show (0.2 s bound below), and shorter than the SDK's seal
    # timeout (1 s), so the batch in flight at the end lands before the result is sealed: exactly once.
    # (At 1.5 s the in-flight batch raced the seal and its lines came twice.)
    scheduler.log_delay = 0.6
    durations: list[float] = []

    def chatty(ctx: ExecutionContext) -> None:
        for i in range(50):
            started = time.monotonic()
            ctx.log(f"line {i}")
            durations.append(time.monotonic() - started)
            ctx.sleep(0.01)

    executor = make_executor({"chatty": chatty}, live_flush_interval=0.02)
    dispatch(executor, "e-1", "chatty")
    [callback] = wait_until(lambda: scheduler.callbacks_for("e-1"), timeout=10)
    assert max(durations) < 0.2
    delivered = messages(scheduler.streamed_lines("e-1")) + messages(callback["logs"].split("\n"))
    assert [m for m in delivered if m.startswith("line ")] == [f"line {i}" for i in range(50)]


def test_without_live_endpoints_every_line_goes_with_the_result():
    # An older scheduler: /logs and /progress are unknown routes (404 with code 404).
    old = FakeScheduler().start()
    release = threading.Event()

    def job(ctx: ExecutionContext) -> None:
        ctx.log("first")
        ctx.progress(50, "half")
        release.wait(10)
        ctx.log("second")

    executor = Executor("old", "old-1", old.url, live_flush_interval=0.02, callback_retry=(0.05, 0.2),
                        heartbeat_interval=0.1)
    executor.add_handler("job", job)
    executor.start()
    try:
        dispatch(executor, "e-1", "job")
        wait_until(lambda: old.seen("POST", "/api/v1/executions/e-1/"))
        time.sleep(0.2)  # several flush rounds: the first 404 switched streaming off
        release.set()
        [callback] = wait_until(lambda: old.callbacks_for("e-1"))
        assert [m for m in messages(callback["logs"].split("\n")) if m in ("first", "second")] == ["first", "second"]
        live_calls = [r for r in old.seen("POST", "/api/v1/executions/e-1/") if not r.path.endswith("/callback")]
        assert len(live_calls) == 1
    finally:
        executor.stop(timeout=2)
        old.stop()


def test_lines_refused_because_the_run_is_final_go_with_the_result(scheduler, make_executor):
    scheduler.final.add("e-1")
    release = threading.Event()

    def job(ctx: ExecutionContext) -> None:
        ctx.log("kept for the result")
        release.wait(10)

    executor = make_executor({"job": job}, live_flush_interval=0.02)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: scheduler.seen("POST", "/api/v1/executions/e-1/logs"))
    release.set()
    [callback] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert "kept for the result" in messages(callback["logs"].split("\n"))


def test_stream_logs_off_sends_lines_only_with_the_result(scheduler, make_executor):
    release = threading.Event()

    def job(ctx: ExecutionContext) -> None:
        ctx.log("only at the end")
        release.wait(10)

    executor = make_executor({"job": job}, live_flush_interval=0.02, stream_logs=False)
    dispatch(executor, "e-1", "job")
    time.sleep(0.2)
    assert scheduler.streamed_lines("e-1") == []
    release.set()
    [callback] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert "only at the end" in messages(callback["logs"].split("\n"))


def test_over_long_lines_and_huge_records_fit_the_api_limits():
    pieces = api_lines("é" * 5000)  # 10000 bytes
    assert [len(piece.encode()) <= MAX_LINE_BYTES for piece in pieces] == [True, True]
    assert "".join(pieces) == "é" * 5000
    last, lines = take_batch([(7, "\n".join(str(i) for i in range(1500))), (8, "next")])
    assert (last, lines) == (7, [str(i) for i in range(1500)])  # one record is never split across batches
    last, lines = take_batch([(1, "a\nb"), (2, "c"), (3, "d")], max_lines=3)
    assert (last, lines) == (2, ["a", "b", "c"])


# --- progress -------------------------------------------------------------------------------------------------


def test_progress_reaches_the_scheduler_coalesced(scheduler, make_executor):
    release = threading.Event()

    def job(ctx: ExecutionContext) -> None:
        ctx.progress(5, "download")
        for percent in range(6, 51):
            ctx.progress(percent)
        release.wait(10)

    executor = make_executor({"job": job}, live_flush_interval=0.02, progress_interval=0.3)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: any(r["percent"] == 50 for r in scheduler.progress_reports("e-1")))
    time.sleep(0.4)  # one more interval: nothing newer to send, so nothing is sent
    reports = scheduler.progress_reports("e-1")
    assert 1 <= len(reports) <= 2  # 46 calls within microseconds: the first report, then the latest
    assert reports[0]["step"] == "download"
    assert reports[-1]["percent"] == 50
    assert [r["percent"] for r in reports] == sorted(r["percent"] for r in reports)
    release.set()
    wait_until(lambda: scheduler.callbacks_for("e-1"))


def test_progress_is_rate_limited_while_reported_continuously(scheduler, make_executor):
    def job(ctx: ExecutionContext) -> None:
        end = time.monotonic() + 1.0
        calls = 0
        while time.monotonic() < end:
            calls += 1
            ctx.progress(min(99, calls / 10))
            time.sleep(0.001)
        ctx.progress(100, "done")
        ctx.sleep(0.5)

    executor = make_executor({"job": job}, live_flush_interval=0.02, progress_interval=0.25)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: any(r["percent"] == 100 for r in scheduler.progress_reports("e-1")), timeout=5)
    reports = scheduler.progress_reports("e-1")
    assert 3 <= len(reports) <= 1.5 / 0.25 + 2
    assert reports[-1] == {"percent": 100.0, "step": "done"}
    wait_until(lambda: scheduler.callbacks_for("e-1"))


def test_a_record_of_more_lines_than_one_append_is_streamed_whole(scheduler, make_executor):
    release = threading.Event()

    def job(ctx: ExecutionContext) -> None:
        ctx.log("\n".join(f"row {i}" for i in range(2500)))
        release.wait(10)

    executor = make_executor({"job": job}, live_flush_interval=0.02)
    dispatch(executor, "e-1", "job")
    wait_until(lambda: "row 2499" in scheduler.streamed_lines("e-1"))
    appends = scheduler.seen("POST", "/api/v1/executions/e-1/logs")
    # The "started" line alone (it and the record exceed one append), then the record in three parts.
    assert [len(r.body["lines"]) for r in appends] == [1, 1000, 1000, 500]
    streamed = scheduler.streamed_lines("e-1")
    assert streamed[1].endswith(" INFO row 0")
    assert streamed[2:] == [f"row {i}" for i in range(1, 2500)]
    release.set()
    [callback] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert "row 2499" not in callback["logs"]


def test_progress_validates_its_arguments():
    ctx = ExecutionContext()
    for bad in (-1, 100.5, True, "50", float("nan")):
        with pytest.raises(ValueError):
            ctx.progress(bad)
    with pytest.raises(ValueError):
        ctx.progress(10, "x" * 256)
    ctx.progress(100, "done")  # a context built by hand has nowhere to send it: no error


def test_progress_goes_to_the_context_sink():
    seen = []
    ctx = ExecutionContext(execution_id="e-7", progress_sink=lambda *report: seen.append(report))
    ctx.progress(12, "step")
    ctx.progress(13)
    assert seen == [("e-7", 12.0, "step"), ("e-7", 13.0, None)]


# --- client ---------------------------------------------------------------------------------------------------


def test_client_live_methods_call_the_api(scheduler):
    scheduler.script("GET", "/api/v1/executions/e-1/logs", ok({"lines": ["a"], "total_lines": 1}))
    scheduler.script("GET", "/api/v1/scheduler/running", ok({"data": [], "total": 0}))
    scheduler.script("GET", "/api/v1/scheduler/metrics", ok({"executions": {"running": 0}}))
    with SchedulerClient(scheduler.url, auth=registered_credentials()) as client:
        assert client.append_logs("e-1", ["x", "y"])["appended"] == 2
        assert client.tail_logs("e-1", lines=5) == {"lines": ["a"], "total_lines": 1}
        assert client.report_progress("e-1", 40, "step")["progress_percent"] == 40
        client.report_progress("e-1", 41)
        assert client.running_executions(page=2, page_size=5) == {"data": [], "total": 0}
        assert client.scheduler_metrics() == {"executions": {"running": 0}}
    seen = [(r.method, r.path, r.body, r.query) for r in scheduler.requests]
    assert seen == [
        ("POST", "/api/v1/executions/e-1/logs", {"lines": ["x", "y"]}, {}),
        ("GET", "/api/v1/executions/e-1/logs", None, {"lines": ["5"]}),
        ("POST", "/api/v1/executions/e-1/progress", {"percent": 40, "step": "step"}, {}),
        ("POST", "/api/v1/executions/e-1/progress", {"percent": 41}, {}),
        ("GET", "/api/v1/scheduler/running", None, {"page": ["2"], "page_size": ["5"]}),
        ("GET", "/api/v1/scheduler/metrics", None, {}),
    ]


def test_client_append_to_a_final_execution_raises_30002(scheduler):
    scheduler.final.add("e-2")
    with SchedulerClient(scheduler.url, auth=registered_credentials()) as client, \
            pytest.raises(SchedulerAPIError) as raised:
        client.append_logs("e-2", ["late"])
    assert (raised.value.http_status, raised.value.code) == (409, 30002)
