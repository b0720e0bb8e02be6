"""Clients generated from the live schema, untouched, drive a live scheduler (web server, scheduler node, an
executor): openapi-python-client's Python client and openapi-typescript's types (checked by ``tsc --strict``,
then run by node) create a task, update it partially, assign it, list, trigger, read the execution's detail
and the stats. Before the fix the Python generator merged ``_ExecutorDetail`` into ``ExecutorDetail`` and
dropped ``ExecutionDetail``, and ``TaskUpdateRequest`` required a name.

The generators are installed once into var/tools/ (a virtualenv for the Python one, npm's --prefix for the
TypeScript one); a test skips, saying why, only when its generator cannot be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.processes import REPO

pytestmark = pytest.mark.e2e

TOOLS = REPO / "var" / "tools"
HERE = Path(__file__).resolve().parent / "generated_clients"
PYTHON_GENERATOR = "openapi-python-client>=0.29,<0.30"
NPM_PACKAGES = ["openapi-typescript@7.13.0", "typescript@5.9.3"]


def _installed(marker: Path, install) -> str | None:
    """Runs ``install`` unless ``marker`` says a previous run finished it; the reason it failed, else None."""
    if marker.exists():
        return None
    try:
        install()
    except (OSError, subprocess.SubprocessError) as exc:
        output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or b""
        return f"{exc} {output[-500:]!r}"
    marker.write_text("ok\n")
    return None


def python_generator() -> Path:
    home = TOOLS / "openapi-python-client"

    def install() -> None:
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(home / "bin" / "pip"), "install", "--quiet", PYTHON_GENERATOR], check=True,
                       capture_output=True, timeout=600)

    failure = _installed(home / "installed.ok", install)
    if failure:
        pytest.skip(f"openapi-python-client could not be installed into {home}: {failure}")
    return home / "bin"


def typescript_tools() -> Path:
    home = TOOLS / "openapi-typescript"
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: openapi-typescript and tsc cannot be installed")

    def install() -> None:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(home), "--cache",
                        str(TOOLS / "npm-cache"), *NPM_PACKAGES], check=True, capture_output=True, timeout=600)

    failure = _installed(home / "installed.ok", install)
    if failure:
        pytest.skip(f"openapi-typescript/typescript could not be installed into {home}: {failure}")
    return home / "node_modules" / ".bin"


@pytest.fixture
def live(cluster):
    """A live scheduler and its schema, fetched from it as a client generator would."""
    cluster.start(schedulers=("s1",), executors=("ex-a",))
    schema = requests.get(f"{cluster.web.url}/api/schema/", params={"format": "json"}, timeout=30)
    schema.raise_for_status()
    return cluster, schema.text


def run(argv: list, cwd: Path, **options) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          **options)
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def expect_a_finished_echo(seen: dict, greeting: str) -> None:
    assert seen["status"] == "success" and seen["result"]["echo"]["greeting"] == greeting, seen
    assert seen["executor_instance"] == "ex-a" and seen["listed_page_size"] == 5
    assert seen["stats_total"] == 1 and seen["stats_end_time"]


def test_the_generated_python_client_drives_a_live_scheduler(live, tmp_path):
    tools = python_generator()
    cluster, schema = live
    (tmp_path / "schema.json").write_text(schema)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff post-hooks
    generated = run([tools / "openapi-python-client", "generate", "--path", "schema.json", "--meta", "none",
                     "--output-path", "client"], tmp_path, env=env)
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    models = {path.stem for path in (tmp_path / "client" / "models").glob("*.py")}
    assert {"execution_detail", "execution_executor_detail", "executor_detail"} <= models

    driven = run([tools / "python", HERE / "drive_python_client.py", tmp_path, cluster.web.url,
                  cluster.admin_api_key(), cluster.executor_ids["ex-a"]], tmp_path)
    seen = json.loads(driven.stdout.strip().splitlines()[-1])
    expect_a_finished_echo(seen, "from the generated client")
    assert seen["task_timeout"] == 45  # the partial PUT, through TaskUpdateRequest without a name


def test_the_generated_typescript_types_check_and_drive_a_live_scheduler(live, tmp_path):
    tools = typescript_tools()
    cluster, schema = live
    (tmp_path / "schema.json").write_text(schema)
    run([tools / "openapi-typescript", "schema.json", "--output", "schema.d.ts"], tmp_path)
    for name in ("drive.ts", "tsconfig.json"):
        shutil.copy(HERE / name, tmp_path / name)
    run([tools / "tsc", "--project", "tsconfig.json"], tmp_path)  # strict: every call must type-check

    env = {**os.environ, "BASE_URL": cluster.web.url, "API_KEY": cluster.admin_api_key(),
           "EXECUTOR_ID": cluster.executor_ids["ex-a"]}
    driven = run(["node", "drive.js"], tmp_path, env=env)
    expect_a_finished_echo(json.loads(driven.stdout.strip().splitlines()[-1]), "from TypeScript")
