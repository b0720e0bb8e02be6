"""deploy/gunicorn.conf.py reads its sizes and log format from the environment."""

from __future__ import annotations

import os
import runpy

import pytest

from scheduling.management.commands.serve import GUNICORN_CONFIG, gunicorn_argv


@pytest.fixture
def load(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # the file sets it when unset
    for name in ("WEB_BIND", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)

    def load_with(**env: str) -> dict:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(GUNICORN_CONFIG))

    return load_with


def test_defaults_size_the_workers_from_the_cpus(load):
    config = load()
    assert config["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert (config["threads"], config["worker_class"], config["timeout"]) == (4, "gthread", 30)
    assert config["bind"] == ["127.0.0.1:8000"] and "logger_class" not in config


def test_the_environment_overrides_sizes_bind_and_log_format(load):
    config = load(WEB_CONCURRENCY="3", WEB_THREADS="8", WEB_TIMEOUT="60", WEB_BIND="0.0.0.0:9000", LOG_FORMAT="json")
    assert (config["workers"], config["threads"], config["timeout"]) == (3, 8, 60)
    assert config["bind"] == ["0.0.0.0:9000"]
    assert config["logger_class"] == "scheduler_project.access_log.JSONLogger"


def test_a_bad_size_stops_the_start(load):
    with pytest.raises(ValueError, match="WEB_THREADS"):
        load(WEB_THREADS="0")


def test_serve_execs_gunicorn_of_this_interpreter_with_the_config_and_binds():
    argv = gunicorn_argv("/etc/scheduler/gunicorn.conf.py", ["127.0.0.1:8001", "[::1]:8001"])
    assert argv[1:] == ["-m", "gunicorn", "--config", "/etc/scheduler/gunicorn.conf.py", "--bind=127.0.0.1:8001",
                        "--bind=[::1]:8001", "scheduler_project.wsgi:application"]
