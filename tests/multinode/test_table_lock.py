"""A table locked for longer than the keep-alive limit (another session's LOCK TABLES / ACCESS EXCLUSIVE lock on
the executions table), with gunicorn's sync workers as in production: the database's lock-wait limit turns the
blocked statements into quick errors, so the leader's loop keeps going (and keeps its lock: no second leader,
one term), and callbacks answer 503 and are retried instead of holding every worker, so /api/v1/health
answers throughout. The limits are scaled down (lock wait 2 s, stall limit 4 s, lock idle timeout 5 s)."""

from __future__ import annotations

import contextlib
import time

import pytest
import requests
from django.db import connection

from core.clock import utc_now
from executions.models import TaskExecution
from scheduling.models import LeaderTerm

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                       reason="needs a database server with table locks and session lock-wait limits"),
]

LOCK_WAIT = 2
LOCKED_SECONDS = 12  # > stall limit (4 s) + the lock's idle timeout (5 s): long enough to lose leadership
HEALTH_BOUND = 2 * LOCK_WAIT + 2  # a worker busy with a callback frees within one lock wait, twice over
LIMITS = {"DATABASE_LOCK_TIMEOUT": str(LOCK_WAIT), "SCHEDULER_STALL_LIMIT": "4"}


@contextlib.contextmanager
def table_locked(table: str):
    """Locks ``table`` against reads and writes from a connection of its own (no session limits of ours)."""
    settings = connection.settings_dict
    if connection.vendor == "mysql":
        import MySQLdb

        raw = MySQLdb.connect(host=settings["HOST"] or "127.0.0.1", port=int(settings["PORT"] or 3306),
                              user=settings["USER"] or "root", password=settings["PASSWORD"] or "",
                              database=settings["NAME"])
        statements = (f"LOCK TABLES {table} WRITE", "UNLOCK TABLES")
    else:
        import psycopg

        raw = psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=int(settings["PORT"] or 5432),
                              user=settings["USER"] or None, password=settings["PASSWORD"] or None,
                              dbname=settings["NAME"])
        statements = (f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", "ROLLBACK")
    try:
        raw.cursor().execute(statements[0])
        yield
        raw.cursor().execute(statements[1])
    finally:
        raw.close()


def health_seconds(url: str) -> float:
    started = time.monotonic()
    requests.get(f"{url}/api/v1/health", timeout=60)
    return time.monotonic() - started


def test_a_locked_table_gives_quick_errors_not_two_leaders_or_blocked_web_workers(cluster, capsys):
    cluster.procs.env.update(LIMITS)
    cluster.start(schedulers=("n1", "n2"), executors=("ex-a", "ex-b"), gunicorn_workers=2)
    leader = cluster.wait_one_leader()
    tasks = [cluster.make_task(f"sleep.lock{i}", cron="*/1 * * * * *", executors=("ex-a", "ex-b"),
                               parameters={"seconds": 3}, timeout_seconds=60) for i in range(4)]
    cluster.wait_until(lambda: TaskExecution.objects.filter(task_id__in=[t["id"] for t in tasks],
                                                            status="success").count() >= 8, 30, "runs to succeed")

    slowest, leaders_seen = 0.0, set()
    with table_locked(TaskExecution._meta.db_table):
        locked_until = time.monotonic() + LOCKED_SECONDS
        while time.monotonic() < locked_until:
            slowest = max(slowest, health_seconds(cluster.web.url))
            leaders_seen.add(tuple(cluster.leaders()))
            time.sleep(0.2)
    unlocked_at = utc_now()
    with capsys.disabled():
        print(f"\n[table lock] {LOCKED_SECONDS} s lock: slowest /health {slowest:.2f} s, leaders seen {leaders_seen}")

    assert leaders_seen == {(leader,)}
    elected = sum(child.log_text().count("is now the leader") for child in cluster.schedulers.values())
    assert elected == 1 and LeaderTerm.objects.get().term == 1, "a second leader was elected"
    assert slowest < HEALTH_BOUND, f"/api/v1/health took {slowest:.1f} s while the table was locked"
    assert "Lock wait timeout exceeded" in cluster.schedulers[leader].log_text() or connection.vendor != "mysql"
    cluster.wait_until(lambda: TaskExecution.objects.filter(status="success", scheduled_time__gt=unlocked_at).exists(),
                       30, "a run scheduled after the lock to succeed")
