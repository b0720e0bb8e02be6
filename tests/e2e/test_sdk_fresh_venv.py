"""README "Writing an executor", as a newcomer follows it: a fresh virtualenv outside the repository, the SDK
installed from its directory on its own (no Django), then the README's lines, run as written but for the
scheduler's address and the port, against a live scheduler (web server and scheduler node).

Offline: the SDK's wheel is built with the shared virtualenv's setuptools and wheel (requirements-dev.txt),
installed with ``--no-index --no-deps``, and ``requests`` with its dependencies is lent from the shared
virtualenv's site-packages through a ``.pth`` file (nothing else of it: ``import django`` must fail).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.processes import REPO, Child, free_port, wait_for

pytestmark = pytest.mark.e2e

README_BLOCK = re.compile(r"## Writing an executor\n.*?```python\n(.*?)```", re.DOTALL)
LENT = ("requests", "urllib3", "idna", "certifi", "charset-normalizer")


def readme_lines() -> str:
    return README_BLOCK.search((REPO / "README.md").read_text()).group(1)


def top_level_entries(distribution: str) -> set[Path]:
    """The files and packages a distribution installed at the top of site-packages."""
    dist = importlib.metadata.distribution(distribution)
    entries = set()
    for file in dist.files or ():
        top = file.parts[0]
        if not top.endswith((".dist-info", ".data")) and top != "..":
            entries.add(Path(dist.locate_file(top)))
    return entries


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    if importlib.util.find_spec("wheel") is None:
        pytest.skip("the 'wheel' package (requirements-dev.txt) is not installed: the SDK wheel cannot be built "
                    "offline")
    root = tmp_path_factory.mktemp("newcomer")
    source = root / "scheduler_sdk"  # a copy: building in the tree would leave build/ behind in it
    shutil.copytree(REPO / "scheduler_sdk", source, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                                   "*.egg-info"))
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(wheels), str(source)], check=True, cwd=root, timeout=300)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    [wheel] = wheels.glob("scheduler_sdk-*.whl")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", str(wheel)],
                   check=True, cwd=root, timeout=300)
    lent = root / "lent"
    lent.mkdir()
    for name in LENT:
        for entry in top_level_entries(name):
            (lent / entry.name).symlink_to(entry)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "lent-requests.pth").write_text(f"{lent}\n")
    return python


def run_in(python: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=python.parent, timeout=60)


def test_the_sdk_installs_alone_into_a_fresh_virtualenv(fresh_venv):
    found = run_in(fresh_venv, "import scheduler_sdk, requests; print(scheduler_sdk.__file__)")
    assert found.returncode == 0, found.stderr
    assert str(REPO) not in found.stdout and "site-packages" in found.stdout
    assert run_in(fresh_venv, "import django").returncode != 0  # the SDK pulled in no Django


def test_the_readme_executor_registers_and_runs_against_a_live_scheduler(fresh_venv, cluster, tmp_path):
    cluster.start(schedulers=("s1",), executors=())
    port = free_port()
    code = readme_lines().replace("http://127.0.0.1:8000", cluster.web.url).replace("port=9090", f"port={port}")
    assert code.count("\n") >= 12 and cluster.web.url in code and f"port={port}" in code
    script = tmp_path / "reports.py"
    script.write_text(code)
    env = {key: value for key, value in cluster.procs.env.items()
           if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    executor = Child("readme-executor", [str(fresh_venv), str(script)], env, cluster.procs.log_dir / "readme.log")
    cluster.procs.children.append(executor)

    line = wait_for(lambda: re.search(r"registered as reports \(instance reports-1, executor id \S+\) with "
                                      + re.escape(cluster.web.url) + rf", listening on http://\S+:{port}; "
                                      r"handlers: daily_report", executor.log_text()),
                    60, interval=0.2, message="the README executor to say it registered")
    assert line
    task = wait_for(lambda: [t for t in cluster.client.list_tasks(page_size=100) if t["name"] == "daily_report"],
                    30, interval=0.2, message="the task its registration declares")[0]
    run = cluster.client.trigger_task(task["id"])
    done = wait_for(lambda: (lambda e: e if e["status"] in ("success", "failed", "timeout") else None)(
        cluster.client.get_execution(run["id"])), 60, interval=0.2, message="the triggered run to finish")
    assert done["status"] == "success" and done["result"] == {"rows": 42}
    assert "building report for" in done["logs"]
