"""Live execution logs: POST/GET /api/v1/executions/{id}/logs, the per-execution cap, and the callback's use
of the same cap."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from core import logtext
from executions import services
from executions.models import TaskExecution
from tests.helpers import assert_error, assert_ok

EXECUTIONS = "/api/v1/executions"
MARKER_PREFIX = "[... "


@pytest.fixture
def api(admin_or_executor_api):
    return admin_or_executor_api  # the executor's own POSTs come signed, as only those pass authentication


def logs_path(execution) -> str:
    return f"{EXECUTIONS}/{execution.pk}/logs"


def stored_logs(execution) -> str:
    return TaskExecution.objects.get(pk=execution.pk).logs


@pytest.fixture
def running(make_execution, make_executor):
    return make_execution(status="running", executor=make_executor(), start_time=timezone.now())


# --- appending ------------------------------------------------------------------------------------------------


def test_append_adds_lines_to_a_running_execution(api, running):
    data = assert_ok(*api.post(logs_path(running), {"lines": ["first", "second"]}))
    assert data == {"appended": 2, "total_chars": len("first\nsecond"), "truncated": False}
    assert_ok(*api.post(logs_path(running), {"lines": ["third"]}))
    assert stored_logs(running) == "first\nsecond\nthird"


def test_append_keeps_lines_already_stored_and_empty_lines(api, make_execution):
    pending = make_execution(status="pending", logs="queued")
    data = assert_ok(*api.post(logs_path(pending) + "/", {"lines": ["", "  indented  "]}))
    assert data["appended"] == 2
    assert stored_logs(pending) == "queued\n\n  indented  "


@pytest.mark.parametrize("status", ["success", "failed", "timeout", "skipped", "cancelled"])
def test_append_to_a_final_execution_is_refused_with_30002(api, make_execution, status):
    execution = make_execution(status=status, logs="done")
    body = assert_error(*api.post(logs_path(execution), {"lines": ["late"]}), 409, 30002)
    assert body["details"]["status"] == status
    assert stored_logs(execution) == "done"


def test_append_to_an_unknown_execution_is_30001(api):
    assert_error(*api.post(f"{EXECUTIONS}/nope/logs", {"lines": ["x"]}), 404, 30001)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"lines": []},
        {"lines": "one line"},
        {"lines": [1, 2]},
        {"lines": [None]},
        {"lines": ["ok", {"nested": 1}]},
        {"lines": ["x"] * 1001},
        {"lines": ["é" * 4097]},  # 4097 characters but 8194 bytes: over 8 KiB
        {"lines": ["nul \u0000 inside"]},
        {"lines": ["x"], "level": "info"},
    ],
    ids=["missing", "empty", "string", "numbers", "null", "object", "too-many", "too-long", "nul", "unknown-key"],
)
def test_append_rejects_invalid_bodies(api, running, body):
    status, response = api.post(logs_path(running), body)
    assert_error(status, response, 400)
    assert stored_logs(running) == ""


def test_append_accepts_the_limits_exactly(api, running):
    line = "é" * 4096  # 8192 bytes
    data = assert_ok(*api.post(logs_path(running), {"lines": [line] + ["x"] * 999}))
    assert data["appended"] == 1000
    assert stored_logs(running).startswith(line + "\nx\n")


# --- the cap --------------------------------------------------------------------------------------------------


@override_settings(EXECUTION_LOG_MAX_CHARS=1000)
def test_append_past_the_cap_keeps_the_tail_behind_one_marker(api, running):
    sent: list[str] = []
    for batch in range(5):
        lines = [f"batch {batch} line {i:03d} " + "x" * 20 for i in range(20)]
        sent.extend(lines)
        data = assert_ok(*api.post(logs_path(running), {"lines": lines}))
    assert data["truncated"] is True
    logs = stored_logs(running)
    assert data["total_chars"] == len(logs) <= 1000
    assert logs.count(MARKER_PREFIX) == 1
    dropped, body = logtext.split_marker(logs)
    everything = "\n".join(sent)
    # What is kept is exactly the end of everything sent, starting at a line boundary, and the marker
    # counts every character before it.
    assert body == everything[dropped:]
    assert everything[dropped - 1] == "\n"
    assert logs.startswith(f"[... {dropped} earlier characters truncated ...]\n")
    assert logs.endswith(sent[-1])


def test_cap_logs_never_stacks_markers_and_counts_add_up():
    text = ""
    everything: list[str] = []
    for i in range(300):
        line = f"line {i}"
        everything.append(line)
        text = logtext.appended_logs(text, line, max_chars=200)
        assert len(text) <= 200
    assert text.count("truncated") == 1
    dropped, body = logtext.split_marker(text)
    assert body == "\n".join(everything)[dropped:]


def test_cap_logs_keeps_a_single_huge_line_partially():
    capped = logtext.cap_logs("a" * 5000, max_chars=1000)
    dropped, body = logtext.split_marker(capped)
    assert len(capped) <= 1000
    assert body == "a" * (5000 - dropped)


@override_settings(EXECUTION_LOG_MAX_CHARS=1000)
def test_callback_logs_use_the_same_cap(api, running):
    assert_ok(*api.post(logs_path(running), {"lines": ["streamed line"]}))
    report = "\n".join(f"callback line {i:04d}" for i in range(200))
    status, body = api.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": "success", "logs": report})
    assert_ok(status, body, message="执行回调处理成功")
    logs = stored_logs(running)
    assert len(logs) <= 1000
    assert logs.count(MARKER_PREFIX) == 1
    dropped, kept = logtext.split_marker(logs)
    assert kept == ("streamed line\n" + report)[dropped:]
    assert logs.endswith("callback line 0199")


def test_callback_logs_below_the_cap_are_appended_unchanged(api, running):
    assert_ok(*api.post(logs_path(running), {"lines": ["streamed"]}))
    assert_ok(*api.post(f"{EXECUTIONS}/{running.pk}/callback", {"status": "failed", "logs": "rest"}),
              message="执行回调处理成功")
    assert stored_logs(running) == "streamed\nrest"


# --- tailing --------------------------------------------------------------------------------------------------


def test_tail_returns_the_last_lines_and_the_total(api, make_execution):
    execution = make_execution(status="success", logs="\n".join(f"l{i}" for i in range(1, 6)))
    data = assert_ok(*api.get(logs_path(execution), {"lines": 2}))
    assert data == {"execution_id": execution.pk, "status": "success", "lines": ["l4", "l5"], "total_lines": 5,
                    "truncated": False, "progress_percent": None, "progress_step": "", "progress_updated_at": None}


def test_tail_carries_the_last_progress_for_the_console_live_tail(api, make_execution):
    execution = make_execution(status="running", logs="a", progress_percent=42.5, progress_step="writing")
    data = assert_ok(*api.get(logs_path(execution)))
    assert (data["progress_percent"], data["progress_step"]) == (42.5, "writing")


def test_tail_defaults_to_100_lines(api, make_execution):
    execution = make_execution(status="running", logs="\n".join(str(i) for i in range(250)))
    data = assert_ok(*api.get(logs_path(execution)))
    assert data["lines"] == [str(i) for i in range(150, 250)]
    assert data["total_lines"] == 250


def test_tail_of_an_execution_without_logs_is_empty(api, make_execution):
    data = assert_ok(*api.get(logs_path(make_execution(status="pending")) + "/"))
    assert (data["lines"], data["total_lines"], data["truncated"]) == ([], 0, False)


def test_tail_more_than_the_maximum_is_capped_at_10000(api, make_execution):
    execution = make_execution(status="running", logs="\n".join(str(i) for i in range(10_005)))
    data = assert_ok(*api.get(logs_path(execution), {"lines": 50_000}))
    assert len(data["lines"]) == 10_000
    assert data["lines"][0] == "5"


@override_settings(EXECUTION_LOG_MAX_CHARS=1000)
def test_tail_of_truncated_logs_says_so_and_leaves_the_marker_out(api, running):
    assert_ok(*api.post(logs_path(running), {"lines": [f"row {i:04d}" for i in range(500)]}))
    data = assert_ok(*api.get(logs_path(running), {"lines": 3}))
    assert data["truncated"] is True
    assert data["lines"] == ["row 0497", "row 0498", "row 0499"]
    everything = assert_ok(*api.get(logs_path(running), {"lines": 10_000}))
    assert not any(line.startswith(MARKER_PREFIX) for line in everything["lines"])
    assert everything["total_lines"] == len(everything["lines"])


@pytest.mark.parametrize("lines", ["0", "-3", "abc", "1.5"])
def test_tail_rejects_a_bad_line_count(api, running, lines):
    assert_error(*api.get(logs_path(running), {"lines": lines}), 400)


def test_tail_of_an_unknown_execution_is_30001(api):
    assert_error(*api.get(f"{EXECUTIONS}/missing/logs"), 404, 30001)


# --- concurrency ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_lose_no_line(make_execution):
    execution = make_execution(status="running", start_time=timezone.now())
    writers, appends = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(appends):
                services.append_logs(execution_id=execution.pk, lines=[f"w{writer}-{n}"], now=timezone.now())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    lines = stored_logs(execution).split("\n")
    assert sorted(lines) == sorted(f"w{w}-{n}" for w in range(writers) for n in range(appends))
    for w in range(writers):  # each writer's lines in the order it wrote them
        mine = [line for line in lines if line.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{n}" for n in range(appends)]
