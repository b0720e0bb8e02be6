"""Structured logs: the JSON formatter, and LOG_FORMAT=json switching the settings to it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime

from django.conf import settings

from scheduler_project.logformat import JSONFormatter


def record(message: str = "hello %s", args: tuple = ("world",), *, exc_info=None, **extra) -> logging.LogRecord:
    logger = logging.getLogger("scheduling.engine")
    made = logger.makeRecord(logger.name, logging.WARNING, __file__, 10, message, args, exc_info, extra=extra)
    made.created = 1_900_000_000.123456  # 2030-03-17T17:46:40.123Z
    return made


def formatted(made: logging.LogRecord) -> dict:
    line = JSONFormatter().format(made)
    assert "\n" not in line
    return json.loads(line)


def test_core_fields():
    assert formatted(record()) == {"ts": "2030-03-17T17:46:40.123Z", "level": "WARNING",
                                   "logger": "scheduling.engine", "message": "hello world"}


def test_execution_and_task_ids_come_first_then_other_extras():
    payload = formatted(record(execution_id="e-1", task_id="t-1", attempt=2, zone="eu"))
    assert list(payload) == ["ts", "level", "logger", "message", "execution_id", "task_id", "attempt", "zone"]
    assert (payload["execution_id"], payload["task_id"], payload["attempt"]) == ("e-1", "t-1", 2)


def test_exception_text_is_included_on_one_line():
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        payload = formatted(record("failed", (), exc_info=sys.exc_info()))
    assert payload["message"] == "failed"
    assert payload["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad value\nsecond line" in payload["exception"]


def test_values_json_cannot_encode_are_written_as_text():
    payload = formatted(record(when=datetime(2030, 1, 1), ids={"a"}))
    assert payload["when"] == "2030-01-01 00:00:00"
    assert payload["ids"] == "{'a'}"


def test_an_extra_named_like_a_core_field_does_not_replace_it():
    payload = formatted(record(level="custom"))
    assert payload["level"] == "WARNING"
    assert payload["extra_level"] == "custom"


def test_non_ascii_is_kept_readable():
    assert formatted(record("任务 %s", ("完成",)))["message"] == "任务 完成"


def _log_from_a_fresh_process(log_format: str) -> subprocess.CompletedProcess:
    code = (
        "import django, logging; django.setup()\n"
        "logging.getLogger('scheduling.engine').warning('fired %s', 'sync', "
        "extra={'execution_id': 'e-9', 'task_id': 't-9'})\n"
    )
    env = {**os.environ, "LOG_FORMAT": log_format, "DJANGO_SETTINGS_MODULE": "scheduler_project.settings"}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True,
                          text=True, timeout=60)


def test_log_format_json_switches_the_console_handler():
    result = _log_from_a_fresh_process("json")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    payload = json.loads(line)
    assert payload["message"] == "fired sync"
    assert (payload["logger"], payload["level"]) == ("scheduling.engine", "WARNING")
    assert (payload["execution_id"], payload["task_id"]) == ("e-9", "t-9")


def test_default_log_format_stays_plain_text():
    result = _log_from_a_fresh_process("plain")
    assert result.returncode == 0, result.stderr
    assert "WARNING scheduling.engine fired sync" in result.stderr
    assert not result.stderr.lstrip().startswith("{")


def test_unknown_log_format_stops_start_up():
    result = _log_from_a_fresh_process("xml")
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr
