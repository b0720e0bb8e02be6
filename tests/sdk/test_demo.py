"""The demo executor's handlers, run through a real executor and the fake scheduler."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scheduler_sdk.demo import SEED_TASKS, build_executor
from tests.sdk.helpers import dispatch, signed_request, stop_execution, wait_until

PAGE = b"hello demo " * 1000


@pytest.fixture
def demo(scheduler) -> Iterator[Any]:
    executor = build_executor(scheduler.url, port=0, callback_retry=(0.05, 0.2), heartbeat_interval=0.1,
                              seed_tasks=True).start()
    yield executor
    executor.stop(timeout=2)


@pytest.fixture
def web() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(PAGE)))
            self.send_header("X-Secret", "not copied")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page"
    server.shutdown()
    server.server_close()


def run(scheduler, executor, execution_id: str, task_name: str, **parameters: Any) -> dict[str, Any]:
    assert dispatch(executor, execution_id, task_name, parameters=parameters).status_code == 202
    [body] = wait_until(lambda: scheduler.callbacks_for(execution_id))
    return body


def test_seed_tasks_are_declared_at_registration(scheduler, demo):
    assert scheduler.registrations[0]["tasks"] == SEED_TASKS
    assert {task["task_name"] for task in SEED_TASKS} <= set(demo.task_names)


def test_echo_returns_its_parameters(scheduler, demo):
    body = run(scheduler, demo, "e-1", "echo", a=1, nested={"b": [1, 2]})
    assert body["status"] == "success"
    assert body["result"] == {"a": 1, "nested": {"b": [1, 2]}}


def test_fail_reports_its_message(scheduler, demo):
    body = run(scheduler, demo, "e-1", "fail", message="disk on fire")
    assert body["status"] == "failed"
    assert body["result"]["error"] == "RuntimeError: disk on fire"


def test_report_summarises_text_and_numbers(scheduler, demo):
    body = run(scheduler, demo, "e-1", "report", title="weekly", text="a b a\nc a\n", numbers=[1, 2, 3, 4])
    assert body["status"] == "success"
    result = body["result"]
    assert result["title"] == "weekly"
    assert result["text"]["lines"] == 2
    assert result["text"]["words"] == 5
    assert result["text"]["top_words"][0] == ["a", 3]
    assert result["numbers"] == {"count": 4, "sum": 10, "min": 1, "max": 4, "mean": 2.5, "median": 2.5,
                                 "stdev": pytest.approx(1.118, abs=1e-3)}
    assert "report complete" in body["logs"]


def test_report_without_input_fails(scheduler, demo):
    body = run(scheduler, demo, "e-1", "report")
    assert body["status"] == "failed"
    assert "text" in body["result"]["error_message"]


def test_http_get_describes_the_response(scheduler, demo, web):
    body = run(scheduler, demo, "e-1", "http_get", url=web)
    assert body["status"] == "success"
    result = body["result"]
    assert result["status_code"] == 200
    assert result["size"] == len(PAGE)
    assert result["sha256"] == hashlib.sha256(PAGE).hexdigest()
    assert result["truncated"] is False
    assert result["headers"]["content-type"] == "text/plain"
    assert "x-secret" not in {name.lower() for name in result["headers"]}


def test_http_get_stops_reading_at_the_size_cap(scheduler, demo, web):
    result = run(scheduler, demo, "e-1", "http_get", url=web, max_bytes=100)["result"]
    assert (result["size"], result["truncated"]) == (100, True)
    assert result["sha256"] == hashlib.sha256(PAGE[:100]).hexdigest()


def test_http_get_refuses_file_urls(scheduler, demo):
    body = run(scheduler, demo, "e-1", "http_get", url="file:///etc/passwd")
    assert body["status"] == "failed"
    assert "refusing scheme 'file'" in body["result"]["error"]


def test_sleep_can_be_stopped(scheduler, demo):
    assert dispatch(demo, "e-1", "sleep", parameters={"seconds": 30}).status_code == 202
    wait_until(lambda: demo.running == 1)
    stop_execution(demo, "e-1")
    [body] = wait_until(lambda: scheduler.callbacks_for("e-1"))
    assert body["status"] == "cancelled"


def test_demo_cli_registers_serves_and_stops_on_sigterm(scheduler):
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler_sdk.demo", "--scheduler", scheduler.url, "--port", "0",
         "--name", "cli-demo", "--instance-id", "cli-1", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        [registration] = wait_until(lambda: scheduler.registrations, timeout=15)
        assert (registration["name"], registration["instance_id"]) == ("cli-demo", "cli-1")
        assert "tasks" not in registration  # only with --seed-tasks
        response = signed_request(registration["base_url"], "POST", "/execute", {
            "execution_id": "cli-e-1", "task_id": "t", "task_name": "echo", "parameters": {"x": 1}})
        assert response.status_code == 202
        [body] = wait_until(lambda: scheduler.callbacks_for("cli-e-1"))
        assert body["result"] == {"x": 1}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output.decode()
