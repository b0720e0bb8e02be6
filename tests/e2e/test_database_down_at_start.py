"""A node started while its database is down waits for it (logging each attempt, backing off) instead of
exiting, and leads once the database answers; ``quickstart`` waits the same way before migrating.

The database is "down" because nothing listens on the port the children are given; a proxy
(tests/tcp_proxy.py) then starts listening there and forwards to the real server. Needs a database server (MariaDB/MySQL
or PostgreSQL): SQLite has no port to be closed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys

import pytest
from django.db import connection

from tests.processes import MANAGE, Child, database_url, free_port, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                       reason="needs a database server reached over TCP; SQLite has no port to close"),
]

ATTEMPT = re.compile(r"database unreachable \(attempt (\d+)\)")


def database_server() -> tuple[str, int]:
    settings = connection.settings_dict
    default_port = 3306 if connection.vendor == "mysql" else 5432
    return settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or default_port)


@pytest.fixture
def closed_port() -> int:
    """Where the children look for the database: nothing listens there until the test starts the proxy."""
    return free_port()


def through(port: int) -> str:
    return database_url({**connection.settings_dict, "HOST": "127.0.0.1", "PORT": port})


def attempts(child: Child) -> list[int]:
    return [int(number) for number in ATTEMPT.findall(child.log_text())]


def alive_and(child: Child, condition):
    def check():
        assert child.alive, f"{child.name} exited with {child.returncode}:\n{child.tail()}"
        return condition()
    return check


def test_scheduler_started_while_the_database_is_down_waits_then_leads(procs, closed_port):
    from scheduling.models import SchedulerInstance

    node = procs.start_scheduler("late-node", DATABASE_URL=through(closed_port))
    wait_for(alive_and(node, lambda: len(attempts(node)) >= 3), 30, interval=0.1,
             message="three logged attempts to reach the database")

    procs.start_proxy(database_server(), closed_port)
    wait_for(alive_and(node, lambda: SchedulerInstance.objects.filter(instance_id="late-node", is_leader=True)
                       .exists()), 30, interval=0.1, message="the node to lead once the database answers")

    assert attempts(node)[:3] == [1, 2, 3]
    delays = [float(d) for d in re.findall(r"next attempt in ([0-9.]+) s", node.log_text())]
    assert delays[:3] == sorted(delays[:3]) and delays[0] < delays[2], f"no backoff: {delays}"
    assert "OperationalError" not in node.log_text()


def test_quickstart_started_while_the_database_is_down_waits_then_starts_everything(procs, closed_port):
    port = free_port()
    argv = [sys.executable, str(MANAGE), "quickstart", "--port", str(port), "--executor-port", str(free_port())]
    env = {**procs.env, "DATABASE_URL": through(closed_port)}
    child = Child("quickstart", argv, env, procs.log_dir / "quickstart.log")
    procs.children.append(child)
    try:
        wait_for(alive_and(child, lambda: len(attempts(child)) >= 2), 30, interval=0.1,
                 message="two logged attempts to reach the database")
        procs.start_proxy(database_server(), closed_port)
        wait_for(alive_and(child, lambda: "Running. API" in child.log_text()), 60, interval=0.2,
                 message="quickstart to start its processes once the database answers")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the whole tree (web, scheduler, executor)
