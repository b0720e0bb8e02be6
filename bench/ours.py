"""Our scheduler under the bench: a gunicorn web server, ``runscheduler`` nodes and the stub executor.

The bench process configures Django for the bench's own database and uses the ORM for setup (bulk task
inserts) and for reading results; the children are real processes started with ``tests.processes``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from bench.failover import create_database
from core.clock import utc_now
from tests.processes import Child, Processes, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
REGISTRATION_KEY = "bench-registration-key-0123456789"
# The stub takes batched dispatch (POST /execute/batch) with the SDK's default limit, as an SDK executor would.
STUB_EXECUTE_BATCH = 100
# README defaults (production settings), not the tests' fast tunables; the bench states what it changes.
PRODUCTION_TUNABLES = {
    "SCHEDULER_TICK_SECONDS": "0.2",
    "SCHEDULER_ELECTION_RETRY_SECONDS": "0.5",
    "SCHEDULER_HEARTBEAT_INTERVAL": "5",
    "HEALTH_CHECK_INTERVAL": "30",
    "SCHEDULER_LOCK_IDLE_TIMEOUT": "10",
    "SCHEDULER_RETRY_BACKOFF_BASE": "2",
    "SCHEDULER_TIMEOUT_GRACE_SECONDS": "5",
}
WEB_WORKERS = "3"
WEB_THREADS = "4"


def prepare_database(url: str) -> None:
    """Creates, migrates and empties the bench's database, and points this process's Django at it."""
    import django
    from django.core.management import call_command

    create_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    flush()


def open_database(url: str, *, reuse: bool) -> bool:
    """Points this process's Django at the bench database ``url``: as it is (``reuse``, already populated), or
    created, migrated and emptied. Returns whether the caller still has to populate it."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    if reuse:
        import django

        django.setup()
        return False
    prepare_database(url)
    return True


def flush() -> None:
    from django.core.management import call_command
    from django.db import close_old_connections

    close_old_connections()
    call_command("flush", verbosity=0, interactive=False)


class GunicornWeb(Child):
    """The API under gunicorn (the production server), instead of the tests' runserver."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        argv = [str(Path(sys.executable).with_name("gunicorn")), "scheduler_project.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", WEB_WORKERS, "--worker-class", "gthread",
                "--threads", WEB_THREADS, "--backlog", "2048", "--log-level", "warning"]
        super().__init__("web", argv, env, log_path)

    def ready(self) -> bool:
        """Answers at all: whether /health wants credentials is not the bench's concern here."""
        try:
            return requests.get(f"{self.url}/api/v1/health", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def end(self) -> None:
        """SIGTERM first: the gunicorn master then stops its workers (a SIGKILLed master leaves them to
        notice on their own)."""
        if self.alive:
            self.send(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)
        super().end()


@dataclass
class Ours:
    """One run of our system on the bench database. ``close()`` ends every child."""

    database_url: str
    stub_url: str
    log_dir: Path
    tunables: dict[str, str] = field(default_factory=dict)
    executor_id: str = ""
    api_key: str | None = None

    def __post_init__(self) -> None:
        env = {**PRODUCTION_TUNABLES, **self.tunables, "DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 50,
               "SCHEDULER_REGISTRATION_KEY": REGISTRATION_KEY, "LOG_LEVEL": "WARNING",
               "SECURE_SSL_REDIRECT": "false",  # loopback: no TLS proxy in front
               "SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false",  # the console over plain HTTP
               "SCHEDULER_EXECUTOR_ALLOWED_NETWORKS": "127.0.0.0/8"}  # the stub: production refuses loopback
        self.procs = Processes(self.database_url, log_dir=self.log_dir, env=env, lock_prefix="sched_bench")
        self.web: GunicornWeb | None = None

    # -- children -------------------------------------------------------------------------------------

    def start_web(self) -> GunicornWeb:
        collect_static(self.procs.env)
        web = GunicornWeb(free_port(), self.procs.env, self.log_dir / "web.log")
        self.procs.children.append(web)
        self.procs.env["SCHEDULER_CALLBACK_BASE_URL"] = web.url
        wait_for(lambda: web.ready() or (not web.alive and _raise(f"gunicorn died:\n{web.tail()}")), 60,
                 interval=0.2, message="gunicorn to answer /api/v1/health")
        self.web = web
        return web

    def register_stub(self) -> str:
        """Registers the stub as an executor (with the registration key) and hands it its signing secret."""
        assert self.web is not None
        response = requests.post(
            f"{self.web.url}/api/v1/executors/register", timeout=10,
            headers={"Authorization": f"Bearer {REGISTRATION_KEY}"},
            json={"name": "bench-stub", "instance_id": "bench-stub-1", "base_url": self.stub_url,
                  "execute_batch_limit": STUB_EXECUTE_BATCH},
        )
        response.raise_for_status()
        data = response.json()["data"]
        self.executor_id = data["id"]
        requests.post(f"{self.stub_url}/configure", json={"executor_id": data["id"],
                                                          "secret": data.get("secret", "")}, timeout=5)
        return self.executor_id

    def start_scheduler(self, instance_id: str = "bench-1", **env: str) -> Child:
        return self.procs.start_scheduler(instance_id, **env)

    def wait_leader(self, instance_id: str = "bench-1", timeout: float = 60) -> datetime:
        from scheduling.models import SchedulerInstance

        child = next(c for c in self.procs.children if getattr(c, "instance_id", None) == instance_id)
        return self.procs.wait_until(
            lambda: SchedulerInstance.objects.filter(instance_id=instance_id, is_leader=True)
            .values_list("leader_since", flat=True).first(), timeout, f"{instance_id} to lead", watch=[child],
            interval=0.05)

    def create_api_key(self) -> str | None:
        """An admin API key for reads, once the accounts app has ``create_api_key``; None before."""
        result = subprocess.run(  # noqa: S603 - our own command
            [sys.executable, str(REPO / "manage.py"), "create_api_key", "--name", "bench", "--role", "admin"],
            cwd=REPO, env=self.procs.env, capture_output=True, text=True, check=False,
        )
        lines = result.stdout.strip().splitlines()
        self.api_key = lines[-1].strip() if result.returncode == 0 and lines else None
        return self.api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def close(self) -> None:
        self.procs.close()

    # -- data -----------------------------------------------------------------------------------------

    def create_tasks(self, specs: Iterable[dict], *, assign: bool = True) -> list[str]:
        """Inserts active tasks (and their link to the stub), multi-row INSERTs without model instances
        (``api_load.insert_rows``: a million tasks through bulk_create took minutes). Each spec holds Task
        fields; next_run_time is computed by the service's own ``next_fire_after`` (once per schedule, as
        croniter costs ~0.1 ms a call)."""
        from bench.api_load import insert_rows
        from scheduler_project.ids import new_id
        from tasks.choices import TaskStatus
        from tasks.models import Task, TaskExecutor
        from tasks.services import next_fire_after

        now = utc_now()
        cache: dict[tuple, datetime | None] = {}
        ids: list[str] = []

        def tasks() -> Iterator[dict]:
            for spec in specs:
                row = {"id": new_id(), "status": TaskStatus.ACTIVE, "max_retry": 0, "timeout_seconds": 60,
                       "created_at": now, "updated_at": now, **spec}
                key = (row.get("schedule_type"), row.get("cron_expression"), row.get("run_at"))
                if key not in cache:
                    cache[key] = next_fire_after(Task(**{k: v for k, v in row.items() if k != "id"}), now)
                row["next_run_time"] = cache[key]
                ids.append(row["id"])
                yield row

        insert_rows(Task, tasks())
        if assign:
            insert_rows(TaskExecutor, ({"id": new_id(), "task_id": task_id, "executor_id": self.executor_id,
                                        "created_at": now} for task_id in ids))
        return ids


_collected: list[bool] = []


def collect_static(env: dict[str, str]) -> None:
    """``collectstatic`` once per bench process, as ``manage.py serve`` does before gunicorn starts: with DEBUG
    off, the console's pages need its manifest (without it they answer 500), and a worker that rendered one
    before it existed keeps failing."""
    if _collected:
        return
    subprocess.run([sys.executable, str(REPO / "manage.py"), "collectstatic", "--noinput", "-v", "0"],  # noqa: S603
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    _collected.append(True)


def _raise(message: str) -> bool:
    raise AssertionError(message)


def scrape_tick_metrics(port: int) -> tuple[float, float]:
    """(sum, count) of scheduler_tick_duration_seconds from a scheduler node's metrics port."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("scheduler_tick_duration_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("scheduler_tick_duration_seconds_count"):
            count = float(line.split()[-1])
    return total, count


def wait_seconds(seconds: float) -> None:
    time.sleep(max(0.0, seconds))
