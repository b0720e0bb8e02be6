"""The README's quick start, for real: ``manage.py quickstart`` starts the web server, a scheduler and the
demo executor (registering with a key it makes up), prints the admin API key it creates, which the test then
uses; demo runs reach their final states with results and logs; Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys

import pytest

from scheduler_sdk import SchedulerClient
from tests.processes import MANAGE, Child, free_port, wait_for

pytestmark = pytest.mark.e2e

PRINTED_API_KEY = re.compile(r"^(dts_[a-z0-9]{8}_[A-Za-z0-9_-]+)$", re.MULTILINE)


@pytest.fixture
def quickstart(procs):
    port, executor_port = free_port(), free_port()
    argv = [sys.executable, str(MANAGE), "quickstart", "--port", str(port), "--executor-port", str(executor_port)]
    # As on a newcomer's machine: no callback URL and no registration key set; quickstart provides both.
    env = {key: value for key, value in procs.env.items()
           if key not in ("SCHEDULER_CALLBACK_BASE_URL", "SCHEDULER_REGISTRATION_KEY")}
    child = Child("quickstart", argv, env, procs.log_dir / "quickstart.log")
    procs.children.append(child)
    try:
        printed = wait_for(lambda: PRINTED_API_KEY.search(child.log_text()), 60, interval=0.2,
                           message="quickstart to print the admin API key it created")
        yield child, SchedulerClient(f"http://127.0.0.1:{port}", timeout=5, api_key=printed.group(1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the whole tree, should the test fail half-way


def registered_demo_tasks(client: SchedulerClient) -> dict[str, str] | None:
    try:
        tasks = {task["name"]: task["id"] for task in client.list_tasks(page_size=100)}
    except Exception:
        return None
    return tasks if {"echo", "sleep", "fail", "report"} <= set(tasks) else None


def final(client: SchedulerClient, execution_id: str, statuses=("success", "failed", "timeout", "cancelled")):
    execution = client.get_execution(execution_id)
    return execution if execution["status"] in statuses else None


def test_quickstart_runs_demo_tasks_end_to_end_and_stops_cleanly(quickstart):
    child, client = quickstart
    tasks = wait_for(lambda: registered_demo_tasks(client), 60, interval=0.3, message="demo tasks seeded")

    echo = client.trigger_task(tasks["echo"], {"greeting": "hi"})
    done = wait_for(lambda: final(client, echo["id"]), 30, interval=0.2, message="echo finished")
    assert done["status"] == "success" and done["result"]["greeting"] == "hi"
    assert "echo" in done["logs"] and done["executor"]["name"] == "demo-executor"

    failing = client.trigger_task(tasks["fail"], {"message": "boom from the test"})
    failed = wait_for(lambda: final(client, failing["id"]), 30, interval=0.2, message="fail finished")
    assert failed["status"] == "failed" and "boom from the test" in failed["logs"]
    retry = wait_for(lambda: [e for e in client.list_executions(task_id=tasks["fail"])["data"]
                              if e["retry_of_id"] == failing["id"] and e["status"] == "failed"],
                     30, interval=0.3, message="the retry of the failed run")
    assert retry[0]["retry_count"] == 1
    # The quick start's log:// channel: the alert for the failed task shows in the scheduler's output.
    wait_for(lambda: "[ALERT] fail: run failed" in child.log_text(), 30, interval=0.3,
             message="the failure's alert in the quick start's log")

    sleeper = client.trigger_task(tasks["sleep"], {"seconds": 60})
    wait_for(lambda: client.get_execution(sleeper["id"])["status"] == "running", 30, interval=0.2,
             message="sleep running")
    stopped = client.stop_execution(sleeper["id"])
    assert stopped["previous_status"] == "running" and stopped["current_status"] == "cancelled"
    assert client.get_execution(sleeper["id"])["status"] == "cancelled"

    child.send(signal.SIGINT)
    assert child.wait(30) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)  # no process of the tree is left
