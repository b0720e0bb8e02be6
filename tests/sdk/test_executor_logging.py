"""What an executor says while it runs: one line when it registers (who, where it listens), one line per change
of state (unreachable, reachable again, refused), and a 401 at registration that says how to get a key."""

from __future__ import annotations

import logging

from tests.sdk.fake_scheduler import EXECUTOR_ID, api_error
from tests.sdk.helpers import wait_until

REGISTER = "/api/v1/executors/register"


def messages(caplog, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name.startswith("scheduler_sdk") and record.levelno == level]


def test_registration_says_who_registered_where_and_where_it_listens(scheduler, make_executor, caplog):
    caplog.set_level(logging.INFO, logger="scheduler_sdk")
    executor = make_executor({"job": lambda ctx: None})
    [line] = [m for m in messages(caplog, logging.INFO) if m.startswith("registered as")]
    assert line == (f"registered as test-executor (instance {executor.instance_id}, executor id {EXECUTOR_ID}) "
                    f"with {scheduler.url}, listening on {executor.url}; handlers: job")


def test_a_401_at_registration_names_the_key_and_how_to_get_one_once(scheduler, make_executor, caplog,
                                                                      monkeypatch):
    monkeypatch.delenv("SCHEDULER_REGISTRATION_KEY", raising=False)
    caplog.set_level(logging.DEBUG, logger="scheduler_sdk")
    refusal = api_error(401, 401, "未授权", error="Authentication credentials were not provided.")
    scheduler.script("POST", REGISTER, *[refusal] * 4)
    make_executor()
    wait_until(lambda: len(scheduler.registrations) >= 4, message="registration retried")
    [error] = messages(caplog, logging.ERROR)  # however many attempts: one line for the one state
    assert "registration refused (HTTP 401): no key was sent" in error
    assert "SCHEDULER_REGISTRATION_KEY" in error and "create_api_key" in error and "--role executor" in error
    wait_until(lambda: [m for m in messages(caplog, logging.INFO) if m.startswith("registered as")],
               message="registered once the scheduler accepts")


def test_a_refused_key_is_told_apart_from_a_missing_one(scheduler, make_executor, caplog):
    caplog.set_level(logging.INFO, logger="scheduler_sdk")
    scheduler.script("POST", REGISTER, api_error(401, 401, "未授权"))
    make_executor(registration_key="wrong-key")
    [error] = messages(caplog, logging.ERROR)
    assert "registration refused (HTTP 401): the key sent was refused" in error


def test_an_outage_is_one_line_going_down_and_one_coming_back(scheduler, make_executor, caplog):
    caplog.set_level(logging.DEBUG, logger="scheduler_sdk")
    make_executor()
    scheduler.stop()
    wait_until(lambda: len([r for r in caplog.records if "health probe failed" in r.getMessage()]) >= 3,
               message="several probes failed")
    assert len([m for m in messages(caplog, logging.WARNING) if "health probe failed" in m]) == 1
    scheduler.start()
    wait_until(lambda: len([m for m in messages(caplog, logging.INFO) if m.startswith("registered as")]) == 2,
               message="registered again")
    assert messages(caplog, logging.INFO).count("scheduler reachable again, re-registering") == 1
