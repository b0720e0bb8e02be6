"""Start and stop real processes on loopback: the web server, scheduler nodes and executors.

Used by the end-to-end and multi-node tests and by ``bench/failover.py``. Nothing here imports Django at
module level, so the bench can use it before it has configured a database.

Every child gets its own log file; :meth:`Processes.close` always ends every child it started (SIGCONT
first for a frozen one, then SIGKILL), so a failing test never leaks a scheduler holding the leader lock.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parent.parent
MANAGE = REPO / "manage.py"
LOG_ROOT = REPO / "var" / "test-logs"

# Tunables that make a cluster react in tens of milliseconds instead of seconds.
FAST_TUNABLES = {
    "SCHEDULER_TICK_SECONDS": "0.05",
    "SCHEDULER_ELECTION_RETRY_SECONDS": "0.2",
    "SCHEDULER_HEARTBEAT_INTERVAL": "1",
    "HEALTH_CHECK_INTERVAL": "1",
    "SCHEDULER_LOCK_IDLE_TIMEOUT": "5",
    "DATABASE_IDLE_TRANSACTION_TIMEOUT": "5",  # as the lock's: a leader frozen mid-transaction loses both
    "SCHEDULER_RETRY_BACKOFF_BASE": "0.2",
    "SCHEDULER_TIMEOUT_GRACE_SECONDS": "0.5",
    "SCHEDULER_FIRE_AHEAD_SECONDS": "5",  # the production default, stated: tests read it
    # Leases renewed every second and lost after 4 s without renewal (and a sweep asking the executor).
    "SCHEDULER_LEASE_SECONDS": "4",
    "SCHEDULER_LEASE_RENEW_SECONDS": "1",
}

T = TypeVar("T")

# libfaketime (Debian package faketime): see clock_ahead(). Empty when it is not installed.
LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), "")


def clock_ahead(seconds: int) -> dict[str, str]:
    """The environment of a child whose clock runs ``seconds`` ahead, as under ``faketime -f +30s`` but with
    libfaketime preloaded into the child itself (under the faketime command the child is not our child, and
    outlives its kill). libfaketime fakes CLOCK_MONOTONIC too by default, which hangs Python's timed waits."""
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"+{seconds}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


class WaitTimeout(AssertionError):
    """A condition polled by :func:`wait_for` did not become true in time."""


def wait_for(condition: Callable[[], T], timeout: float, *, interval: float = 0.05, message: str = "") -> T:
    """Polls ``condition`` until it returns something truthy, and returns that; raises WaitTimeout after
    ``timeout`` seconds. Exceptions from the condition propagate (a broken probe should fail loudly)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {message or condition!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice, so parallel runs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL that makes a child process use exactly the database ``settings_dict`` describes."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(name).resolve()}"
    if engine.endswith("mysql"):
        scheme, default_port = "mysql", 3306
    elif engine.endswith("postgresql"):
        scheme, default_port = "postgres", 5432
    else:
        raise ValueError(f"no DATABASE_URL form for engine {engine}")
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = ""
    if user:
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or default_port
    return f"{scheme}://{auth}{host}:{port}/{quote(name, safe='')}"


def child_database_url() -> str:
    """The DATABASE_URL of the test database this pytest process uses (call after pytest-django made it)."""
    from django.db import connection

    return database_url(connection.settings_dict)


def child_log_dir(nodeid: str) -> Path:
    """var/test-logs/<vendor>-<test database>/<test>/: runs on different databases (which ``make test`` runs at
    the same time, MariaDB's and PostgreSQL's under the same name) never share, and so never wipe or read,
    each other's logs and journals."""
    from django.db import connection

    name = Path(str(connection.settings_dict["NAME"])).stem
    return LOG_ROOT / slug(f"{connection.vendor}-{name}") / slug(nodeid)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-120:] or "run"


class Child:
    """One started process, its log file and what was done to it."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close(); a restarted node appends
        self.popen = subprocess.Popen(
            argv, cwd=REPO, env=dict(env), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C aimed at pytest does not hit the children half-way
        )
        self.frozen = False

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.pid} rc={self.popen.poll()}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def send(self, signum: int) -> None:
        if self.alive:
            os.kill(self.pid, signum)

    def freeze(self) -> None:
        self.send(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.send(signal.SIGCONT)
        self.frozen = False

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def kill_group(self) -> None:
        """SIGKILL to the child and every process it started (it leads a process group of its own): a gunicorn
        master and its workers die together, as on a host that fails. Killing the master alone leaves its
        workers serving for a second or two."""
        if self.alive:  # not reaped yet, so the group id is still this child's
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def end(self) -> None:
        """Ends the child: SIGCONT first if it was frozen, then SIGKILL to it and the processes it started."""
        if self.alive:
            if self.frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGCONT)
                self.frozen = False
            self.kill_group()
        try:
            self.popen.wait(10)
        finally:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class WebServer(Child):
    """``manage.py runserver`` (a thread per request), or gunicorn with ``gunicorn_workers`` sync workers (a
    request waits for a free worker), or ``argv`` (a production node: ``production_web``)."""

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path, *, argv: list[str] | None = None,
                 name: str = "web", gunicorn_workers: int | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.gunicorn_workers = gunicorn_workers
        if argv is None and gunicorn_workers:
            argv = [sys.executable, "-m", "gunicorn", "scheduler_project.wsgi", "--bind", f"127.0.0.1:{port}",
                    "--workers", str(gunicorn_workers), "--worker-class", "sync", "--no-control-socket"]
        # --skip-checks: the system checks cost a second of CPU per start and the suite runs them anyway.
        argv = argv or [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]
        super().__init__(name, argv, env, log_path)

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False


# A production web node as the README's Deploying section runs it, on loopback without TLS: DEBUG off, the
# plain-HTTP API reachable (no redirect to HTTPS), two small workers instead of 2 x CPUs + 1.
PRODUCTION_WEB_ENV = {
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "0",
    "WEB_CONCURRENCY": "2",
    "WEB_THREADS": "4",
}


def production_web(port: int, env: Mapping[str, str], log_path: Path, name: str) -> WebServer:
    """``manage.py serve`` (migrate under the lock, collectstatic, gunicorn with deploy/gunicorn.conf.py).
    Its static files go to a directory of its own beside its log, as the README advises per node."""
    static_root = log_path.with_name(f"static-{slug(name)}")
    argv = [sys.executable, str(MANAGE), "serve", "--bind", f"127.0.0.1:{port}"]
    return WebServer(port, {**env, **PRODUCTION_WEB_ENV, "STATIC_ROOT": str(static_root)}, log_path,
                     argv=argv, name=name)


class SchedulerProcess(Child):
    def __init__(self, instance_id: str, env: Mapping[str, str], log_path: Path) -> None:
        self.instance_id = instance_id
        argv = [sys.executable, str(MANAGE), "runscheduler", "--instance-id", instance_id,
                "--host", "127.0.0.1", "--port", "0", "--skip-checks"]
        super().__init__(f"scheduler-{instance_id}", argv, env, log_path)


class ProxyProcess(Child):
    """tests/tcp_proxy.py: forwards ``port`` to ``target`` (a database server, for fault tests)."""

    def __init__(self, port: int, target: tuple[str, int], env: Mapping[str, str], log_path: Path) -> None:
        self.port = port
        self.target = target
        argv = [sys.executable, "-m", "tests.tcp_proxy", "--port", str(port), "--target", f"{target[0]}:{target[1]}"]
        super().__init__(f"proxy-{port}", argv, env, log_path)

    def listening(self) -> bool:
        return "listening" in self.log_text()


class ExecutorProcess(Child):
    """An executor built on ``scheduler_sdk.Executor``: the journalling test executor or the demo."""

    def __init__(self, instance_id: str, argv: list[str], env: Mapping[str, str], log_path: Path,
                 journal_path: Path | None) -> None:
        self.instance_id = instance_id
        self.journal_path = journal_path
        super().__init__(f"executor-{instance_id}", argv, env, log_path)

    def journal(self) -> list[dict[str, Any]]:
        """Events the test executor recorded (see tests/e2e/journal_executor.py); [] for the demo."""
        if self.journal_path is None or not self.journal_path.exists():
            return []
        events = []
        for line in self.journal_path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line being written right now
                events.append(json.loads(line))
        return events

    def events(self, kind: str, execution_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.journal()
                if e.get("event") == kind and (execution_id is None or e.get("execution_id") == execution_id)]


class Processes:
    """Starts children with a shared environment and ends all of them in :meth:`close`.

    ``database_url`` is the database every child uses; ``env`` overrides the fast tunables. Each instance
    uses its own leader lock name, so a stray scheduler from an earlier run can never be elected here, and
    its own executor registration key (``registration_key``), given to the web server and the executors.
    """

    def __init__(self, database_url: str, *, log_dir: Path, env: Mapping[str, str] | None = None,
                 lock_prefix: str = "sched_test") -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        for old in log_dir.glob("*"):
            if old.is_file():
                old.unlink()
        self.lock_name = f"{lock_prefix}_{uuid.uuid4().hex[:10]}"
        self.registration_key = secrets.token_urlsafe(24)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": secrets.token_urlsafe(40),  # required by production web nodes (DEBUG=0)
            "DATABASE_URL": database_url,
            "SCHEDULER_LOCK_NAME": self.lock_name,
            "SCHEDULER_REGISTRATION_KEY": self.registration_key,
            **FAST_TUNABLES,
            **(env or {}),
        }
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.children: list[Child] = []
        self.web: WebServer | None = None
        self._closed = False
        atexit.register(self.close)

    # -- starting ---------------------------------------------------------------------------------------

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{slug(name)}.log"

    def start_web(self, port: int | None = None, gunicorn_workers: int | None = None) -> WebServer:
        """Starts the web server on a free port (or ``port``, to restart it where executors expect it);
        schedulers started after it call back there."""
        port = port or free_port()
        self.web = WebServer(port, self.env, self._log_path("web"), gunicorn_workers=gunicorn_workers)
        self.children.append(self.web)
        self.env["SCHEDULER_CALLBACK_BASE_URL"] = self.web.url
        return self.web

    def start_production_web(self, name: str = "web", *, port: int | None = None, **env: str) -> WebServer:
        """A production web node (``manage.py serve``) on ``port`` (default: a free one; a restarted node
        keeps its own); the first one started becomes ``self.web``, the callback address of schedulers
        started after it. ``env`` overrides for this node. A restart appends to the node's log."""
        port = port or free_port()
        child = production_web(port, {**self.env, **env}, self._log_path(name), name)
        self.children.append(child)
        if self.web is None:
            self.web = child
            self.env["SCHEDULER_CALLBACK_BASE_URL"] = child.url
        return child

    def start_scheduler(self, instance_id: str, **env: str) -> SchedulerProcess:
        """A ``manage.py runscheduler`` node; ``env`` overrides tunables for this node only."""
        child = SchedulerProcess(instance_id, {**self.env, **env}, self._log_path(f"scheduler-{instance_id}"))
        self.children.append(child)
        return child

    def start_proxy(self, target: tuple[str, int], port: int | None = None) -> ProxyProcess:
        """A TCP proxy to ``target`` on ``port`` (default: a free one), once it listens."""
        port = port or free_port()
        child = ProxyProcess(port, target, self.env, self._log_path(f"proxy-{port}-{len(self.children)}"))
        self.children.append(child)
        self._wait_alive(child, child.listening, 30, f"the proxy on port {port} to listen")
        return child

    def restart_web(self) -> WebServer:
        """A new web server on the port of the one before (which must have ended): executors and nodes reach
        it where they did."""
        assert self.web is not None and not self.web.alive
        old = self.web
        self.web = WebServer(old.port, self.env, self._log_path(f"web-{len(self.children)}"), argv=old.argv,
                             name=old.name, gunicorn_workers=old.gunicorn_workers)
        self.children.append(self.web)
        return self.web

    def web_log_text(self) -> str:
        """Every web server's log, the restarted ones included."""
        return "".join(child.log_text() for child in self.children if isinstance(child, WebServer))

    def start_executor(self, instance_id: str, *, demo: bool = False, max_workers: int = 8,
                       scheduler: str | None = None, port: int = 0) -> ExecutorProcess:
        """The journalling test executor (handlers echo, fail, sleep), or the SDK's demo executor.
        ``scheduler``: the address(es) it talks to, comma-separated (default: the web server's); ``port``
        of the journalling executor: 0 for any free one, a fixed one to restart it where it was."""
        if self.web is None and scheduler is None:
            raise RuntimeError("start the web server first: executors register with it")
        scheduler = scheduler or self.web.url
        journal = None
        if demo:
            argv = [sys.executable, "-m", "scheduler_sdk.demo", "--scheduler", scheduler, "--port", "0",
                    "--name", "demo-executor", "--instance-id", instance_id, "--max-workers", str(max_workers)]
        else:
            journal = self.log_dir / f"journal-{slug(instance_id)}.jsonl"
            argv = [sys.executable, "-m", "tests.e2e.journal_executor", "--scheduler", scheduler,
                    "--instance-id", instance_id, "--journal", str(journal), "--max-workers", str(max_workers),
                    "--port", str(port)]
        child = ExecutorProcess(instance_id, argv, self.env, self._log_path(f"executor-{instance_id}"), journal)
        self.children.append(child)
        return child

    # -- waiting ----------------------------------------------------------------------------------------

    def wait_web(self, timeout: float = 30, web: WebServer | None = None) -> WebServer:
        web = web or self.web
        assert web is not None
        self._wait_alive(web, web.ready, timeout, f"{web.name} to answer /api/v1/health")
        return web

    def _wait_alive(self, child: Child, condition: Callable[[], Any], timeout: float, message: str) -> Any:
        def check() -> Any:
            if not child.alive:
                raise AssertionError(f"{child.name} exited with {child.returncode} while waiting for {message}:\n"
                                     f"{child.tail()}")
            return condition()

        return wait_for(check, timeout, interval=0.1, message=message)

    def wait_until(self, condition: Callable[[], T], timeout: float, message: str, *,
                   watch: Iterable[Child] = (), interval: float = 0.05) -> T:
        """Like :func:`wait_for`, but fails at once if one of ``watch`` dies meanwhile."""
        watched = list(watch)

        def check() -> T:
            for child in watched:
                if not child.alive:
                    raise AssertionError(f"{child.name} exited with {child.returncode} while waiting for "
                                         f"{message}:\n{child.tail()}")
            return condition()

        return wait_for(check, timeout, interval=interval, message=message)

    # -- ending -----------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for child in reversed(self.children):
            child.end()
        atexit.unregister(self.close)
        # The SQLite leader lock is a file beside the database, named after this run's lock.
        database = self.env["DATABASE_URL"]
        if database.startswith("sqlite:///"):
            path = Path(database[len("sqlite:///"):])
            with contextlib.suppress(FileNotFoundError):
                path.with_name(f"{path.name}.{self.lock_name}.lock").unlink()

    def tails(self, lines: int = 40) -> str:
        parts = []
        for child in self.children:
            parts.append(f"----- {child.name} (pid {child.pid}, exit {child.returncode}) {child.log_path} -----")
            parts.append(child.tail(lines))
        return "\n".join(parts)


# A cron that does not fire during a test: tasks are created with it, assigned, then given their real cron.
NEVER_SOON = "0 0 0 1 1 *"


class Cluster:
    """A web server, scheduler nodes and executors on one database, plus the queries tests ask about them.

    Needs Django configured for the same database as the children (pytest-django does it in tests; the
    bench calls ``django.setup()``). Queries go through the ORM in autocommit mode, so they see what the
    children committed.
    """

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.web: WebServer | None = None
        self.webs: dict[str, WebServer] = {}
        self.client: Any = None
        self.schedulers: dict[str, SchedulerProcess] = {}
        self.executors: dict[str, ExecutorProcess] = {}
        self.executor_ids: dict[str, str] = {}
        self.api_key: str | None = None

    def start(self, *, schedulers: Iterable[str] = ("s1",), executors: Iterable[str] = ("ex-a",),
              web: bool = True, demo: bool = False, wait_leader: bool = True, timeout: float = 30,
              scheduler_env: Mapping[str, str] | None = None, gunicorn_workers: int | None = None) -> Cluster:
        """Starts everything at once (startup is mostly CPU, so overlapping it pays), then waits for the
        web server, every executor's registration and, if asked, an elected leader. ``scheduler_env``
        overrides tunables of the scheduler nodes only."""
        from scheduler_sdk import SchedulerClient

        if web:
            self.web = self.procs.start_web(gunicorn_workers)
        for instance_id in schedulers:
            self.schedulers[instance_id] = self.procs.start_scheduler(instance_id, **(scheduler_env or {}))
        for instance_id in executors:
            self.executors[instance_id] = self.procs.start_executor(instance_id, demo=demo)
        if self.web is not None:
            self.procs.wait_web(timeout)
            self.client = SchedulerClient(self.web.url, timeout=10, api_key=self.admin_api_key())
        return self._wait_started(timeout, wait_leader=wait_leader)

    def start_production(self, *, webs: Iterable[str] = ("web-1", "web-2"), schedulers: Iterable[str] = ("s1",),
                         executors: Iterable[str] = ("ex-a",), timeout: float = 120) -> Cluster:
        """The README's deployment on loopback: web nodes started by ``manage.py serve`` (gunicorn), each on
        its own port with no proxy in front, scheduler nodes, and executors given every web node's address."""
        from scheduler_sdk import SchedulerClient

        self.webs = {name: self.procs.start_production_web(name) for name in webs}
        self.web = self.procs.web
        addresses = ",".join(web.url for web in self.webs.values())
        for instance_id in schedulers:
            self.schedulers[instance_id] = self.procs.start_scheduler(instance_id)
        for instance_id in executors:  # on fixed ports, as in production: a restart comes back where it was
            self.executors[instance_id] = self.procs.start_executor(instance_id, scheduler=addresses,
                                                                    port=free_port())
        for web in self.webs.values():
            self.procs.wait_web(timeout, web)
        self.client = SchedulerClient([web.url for web in self.webs.values()], timeout=10,
                                      api_key=self.admin_api_key())
        return self._wait_started(timeout, wait_leader=True)

    def _wait_started(self, timeout: float, *, wait_leader: bool) -> Cluster:
        """Waits for every executor's registration and, if asked, for the nodes to run and elect a leader."""
        for instance_id, child in self.executors.items():
            self.executor_ids[instance_id] = self.procs.wait_until(
                lambda i=instance_id: self.executor_pk(i), timeout, f"executor {instance_id} to register",
                watch=[child, *([self.web] if self.web else [])], interval=0.1)
        if wait_leader and self.schedulers:
            self.wait_schedulers_running(timeout)
            self.wait_one_leader(timeout)
        return self

    @property
    def children(self) -> list[Child]:
        return list(self.procs.children)

    def alive_schedulers(self) -> list[SchedulerProcess]:
        return [child for child in self.schedulers.values() if child.alive]

    def admin_api_key(self) -> str:
        """An admin API key for the test's own API calls (created once, in the shared database)."""
        from accounts.services import api_key_create

        if self.api_key is None:
            self.api_key = api_key_create(name="cluster tests", role="admin")[1]
        return self.api_key

    # -- queries ----------------------------------------------------------------------------------------

    @staticmethod
    def executor_pk(instance_id: str) -> str | None:
        from executors.models import Executor

        return Executor.objects.filter(instance_id=instance_id).values_list("pk", flat=True).first()

    def wait_schedulers_running(self, timeout: float = 30) -> None:
        """Waits until every live node has registered its row (it does so right before its first tick)."""
        from scheduling.models import SchedulerInstance

        def registered() -> bool:
            wanted = {c.instance_id for c in self.schedulers.values() if c.alive}
            rows = set(SchedulerInstance.objects.filter(instance_id__in=wanted).values_list("instance_id", flat=True))
            return rows == wanted

        self.procs.wait_until(registered, timeout, "every scheduler node to register",
                              watch=[c for c in self.schedulers.values() if c.alive], interval=0.1)

    def leaders(self) -> list[str]:
        """Instance ids of this cluster's nodes whose row says is_leader."""
        from scheduling.models import SchedulerInstance

        return sorted(SchedulerInstance.objects.filter(instance_id__in=list(self.schedulers), is_leader=True)
                      .values_list("instance_id", flat=True))

    def wait_one_leader(self, timeout: float = 30, *, other_than: str | None = None) -> str:
        """Waits until exactly one node's row says leader (and it is not ``other_than``); returns its id."""
        def one() -> str | None:
            leaders = self.leaders()
            if len(leaders) == 1 and leaders[0] != other_than:
                return leaders[0]
            return None

        watch = [c for c in self.schedulers.values() if c.alive and c.instance_id != other_than]
        return self.procs.wait_until(one, timeout, "exactly one leader" + (f" other than {other_than}"
                                                                             if other_than else ""), watch=watch)

    def make_task(self, name: str, *, cron: str | None = None, executors: Iterable[str] = ("ex-a",),
                  **fields: Any) -> dict[str, Any]:
        """Creates a task through the API and assigns executors before it can fire: it is created with a
        cron that does not fire soon and gets ``cron`` (if any) once assigned. Without ``cron`` it only
        runs when triggered."""
        task = self.client.create_task(name=name, cron_expression=NEVER_SOON, **fields)
        for instance_id in executors:
            self.client.assign_executor(task["id"], self.executor_ids[instance_id])
        if cron is not None:
            task = self.client.update_task(task["id"], cron_expression=cron)
        return task

    @staticmethod
    def executions(task_id: str, **filters: Any) -> list[Any]:
        from executions.models import TaskExecution

        return list(TaskExecution.objects.filter(task_id=task_id, **filters)
                    .order_by("scheduled_time", "retry_count", "created_at"))

    @staticmethod
    def duplicate_fires() -> list[tuple]:
        """(task, scheduled_time, trigger_type, retry_count) keys recorded more than once: must be none."""
        from django.db.models import Count

        from executions.models import TaskExecution

        return list(TaskExecution.objects.values_list("task_id", "scheduled_time", "trigger_type", "retry_count")
                    .annotate(n=Count("id")).filter(n__gt=1))

    def wait_until(self, condition: Callable[[], T], timeout: float, message: str, *,
                   interval: float = 0.05) -> T:
        """Polls ``condition``; fails at once if a child that should be running died."""
        watch = [c for c in self.procs.children if c.alive and not c.frozen]
        return self.procs.wait_until(condition, timeout, message, watch=watch, interval=interval)


def attach_child_logs(item: Any, report: Any) -> None:
    """For a ``pytest_runtest_makereport`` hook: a failed test's report gets the tail of every child's log."""
    procs = getattr(item, "child_processes", None)
    if procs is not None and report.failed and report.when in ("setup", "call"):
        report.sections.append((f"child process logs, last lines ({procs.log_dir})", procs.tails()))
