"""`manage.py serve`, the production start of a web node, as real processes: nodes starting together
migrate one at a time (the migration lock), a node waits for another's migration, and SIGHUP replaces the
workers without refusing a request."""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
import uuid
from collections import Counter

import pytest
import requests
from django.db import connection

from scheduling.leader import lock_for_database
from tests.processes import MANAGE, PRODUCTION_WEB_ENV, Child, database_url, wait_for

pytestmark = pytest.mark.e2e


def prepare_node(procs, name: str, database: str) -> Child:
    """``serve --prepare-only``: the migrate-and-collectstatic half of a web node's start."""
    env = {**procs.env, **PRODUCTION_WEB_ENV, "DATABASE_URL": database,
           "STATIC_ROOT": str(procs.log_dir / f"static-{name}")}
    child = Child(name, [sys.executable, str(MANAGE), "serve", "--prepare-only"], env, procs.log_dir / f"{name}.log")
    procs.children.append(child)
    return child


@contextlib.contextmanager
def empty_database(tmp_path):
    """A new, empty database on the server the suite runs on (a new file on SQLite); dropped afterwards."""
    settings = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        yield database_url({**settings, "NAME": str(tmp_path / "fresh.sqlite3")})
        return
    name = f"{settings['NAME']}_fresh_{uuid.uuid4().hex[:6]}"
    create = f"CREATE DATABASE {name}" + (" CHARACTER SET utf8mb4" if connection.vendor == "mysql" else "")
    with connection.cursor() as cursor:
        cursor.execute(create)
    try:
        yield database_url({**settings, "NAME": name})
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name}" + (" WITH (FORCE)" if connection.vendor == "postgresql" else ""))


def test_web_nodes_starting_together_on_an_empty_database_migrate_one_at_a_time(procs, tmp_path):
    with empty_database(tmp_path) as fresh:
        nodes = [prepare_node(procs, f"web-{n}", fresh) for n in (1, 2)]
        for node in nodes:
            assert node.wait(120) == 0, node.tail()
        logs = [node.log_text() for node in nodes]
        # Each migration was applied by exactly one of them; the other found nothing left to do.
        applied = Counter(line.split()[1] for log in logs for line in log.splitlines()
                          if line.strip().startswith("Applying "))
        assert applied and max(applied.values()) == 1
        assert any("No migrations to apply" in log for log in logs)


def test_a_node_waits_for_the_migration_lock_another_holds(procs):
    lock = lock_for_database(dict(connection.settings_dict), f"{procs.lock_name}_migrate", 10)
    assert lock.try_acquire()
    try:
        node = prepare_node(procs, "web", procs.env["DATABASE_URL"])
        procs.wait_until(lambda: "another node is migrating" in node.log_text(), 60, "the node to wait",
                         watch=[node])
        assert node.alive and "Operations to perform" not in node.log_text()
    finally:
        lock.release()
    assert node.wait(60) == 0, node.tail()
    assert re.search(r"\d+ static files? copied", node.log_text())  # "1 static file" on a reused static root


def test_sighup_replaces_the_workers_while_every_request_is_answered(procs):
    web = procs.wait_web(90, procs.start_production_web())
    booted = web.log_text().count("Booting worker")
    statuses: list[int | str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:  # a new connection each time: the listening socket is what must stay open
                response = requests.get(f"{web.url}/api/v1/health", headers={"Connection": "close"}, timeout=10)
                statuses.append(response.status_code)
            except requests.RequestException as exc:
                statuses.append(repr(exc))

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(statuses) >= 5, 30, message="requests before the reload")
        web.send(signal.SIGHUP)
        procs.wait_until(lambda: web.log_text().count("Booting worker") >= booted + 2, 60,
                         "two new workers", watch=[web])
        served_before = len(statuses)
        wait_for(lambda: len(statuses) >= served_before + 20, 30, message="requests after the reload")
    finally:
        stop.set()
        thread.join(15)
    assert web.alive
    assert set(statuses) == {200}, Counter(statuses)
