"""Failover benchmark: how long a cluster of scheduler nodes goes without dispatching when its leader dies.

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_bench .venv/bin/python bench/failover.py --trials 10

Creates (if needed) and migrates the database named in DATABASE_URL, empties it (it is the bench's own),
starts a web server, the demo executor and three ``runscheduler`` nodes on loopback, and creates a
per-second ``echo`` task. Then, repeatedly:

- SIGKILL: kill the leader; measure from the kill to the first execution start_time after it (necessarily
  dispatched by the new leader), to the new leader's ``leader_since``, and how late that first dispatch
  was against its fire time. A fresh node replaces the dead one. Each signal is sent at a random point of
  the cron second, so "first dispatch" includes, on average, half a second of waiting for the next fire.
- SIGSTOP: freeze the leader; the database frees its lock after the lock idle timeout; measure the same,
  then SIGCONT it and wait until it logs that it stepped down.

Prints a table (median/min/max) and checks that no fire was recorded twice. Needs MySQL/MariaDB or
PostgreSQL (the SQLite file lock is single-node). Child logs go to var/bench-logs/. Every child is ended on
exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

from tests.processes import Cluster, Processes  # noqa: E402 - needs the repository on sys.path

EVERY_SECOND = "*/1 * * * * *"


def create_database(url: str) -> None:
    """CREATE DATABASE if it does not exist (the server must be up and the user allowed to)."""
    import dj_database_url

    config = dj_database_url.parse(url)
    engine, name = config["ENGINE"], config["NAME"]
    if engine.endswith("mysql"):
        import MySQLdb

        conn = MySQLdb.connect(host=config.get("HOST") or "127.0.0.1", port=int(config.get("PORT") or 3306),
                               user=config.get("USER") or "root", password=config.get("PASSWORD") or "")
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 "
                               "COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()
    elif engine.endswith("postgresql"):
        import psycopg

        with psycopg.connect(host=config.get("HOST") or "127.0.0.1", port=int(config.get("PORT") or 5432),
                             user=config.get("USER") or None, password=config.get("PASSWORD") or None,
                             dbname="postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    else:
        raise SystemExit(f"bench/failover.py needs MySQL/MariaDB or PostgreSQL, not {engine}: the SQLite "
                         "leader lock is a local file lock and cannot fail over between hosts")


def prepare_django(url: str) -> None:
    """Creates (on a server), migrates and empties the database ``url`` names for a bench's processes."""
    import django
    from django.core.management import call_command

    if not url.startswith("sqlite"):
        create_database(url)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)


def first_start_after(task_id: str, moment: datetime) -> tuple[datetime, datetime] | None:
    """(start_time, scheduled_time) of the first execution of the task started after ``moment``."""
    from executions.models import TaskExecution

    return (TaskExecution.objects.filter(task_id=task_id, start_time__gt=moment).order_by("start_time")
            .values_list("start_time", "scheduled_time").first())


def leader_since(instance_id: str) -> datetime:
    from scheduling.models import SchedulerInstance

    return SchedulerInstance.objects.get(instance_id=instance_id).leader_since


class Bench:
    def __init__(self, cluster: Cluster, task_id: str, rng: random.Random) -> None:
        self.cluster = cluster
        self.task_id = task_id
        self.rng = rng
        self.serial = len(cluster.schedulers)
        self.results: dict[str, list[tuple[float, float, float]]] = {}

    def steady(self) -> str:
        """Waits for one leader that has dispatched a run since it was elected; returns its id."""
        self.cluster.wait_schedulers_running(30)  # a replacement node still booting is no follower yet
        leader = self.cluster.wait_one_leader(30)
        since = leader_since(leader)
        self.cluster.wait_until(lambda: first_start_after(self.task_id, since), 15, "the leader to dispatch")
        return leader

    def trial(self, kind: str) -> tuple[float, float, float]:
        """One failover. Returns seconds from the signal to the new leader's first dispatch and to its
        election, and how late that first dispatch was against its fire time."""
        old = self.steady()
        node = self.cluster.schedulers[old]
        # steady() returns just after a fire: without a random phase every kill would land at the same
        # point of the cron second, and "first dispatch" would measure the wait for the next second.
        time.sleep(self.rng.uniform(0.0, 1.0))
        if kind == "SIGKILL":
            node.send(signal.SIGKILL)
        else:
            node.freeze()
        at = datetime.now(UTC)
        new = self.cluster.wait_one_leader(60, other_than=old)
        started, scheduled = self.cluster.wait_until(lambda: first_start_after(self.task_id, at), 30,
                                                     "the new leader's first dispatch")
        dispatch = (started - at).total_seconds()
        elected = (leader_since(new) - at).total_seconds()
        late = (started - scheduled).total_seconds()
        if kind == "SIGKILL":
            node.wait(10)
            self.serial += 1
            self.cluster.schedulers[f"n{self.serial}"] = self.cluster.procs.start_scheduler(f"n{self.serial}")
        else:
            node.thaw()
            self.cluster.procs.wait_until(
                lambda: f"scheduler {old} stepped down" in node.log_text(), 15, f"{old} to step down", watch=[node])
        done = self.results.setdefault(kind, [])
        done.append((dispatch, elected, late))
        print(f"  {kind} #{len(done)}: {old} -> {new}: elected {elected:6.3f} s, first dispatch {dispatch:6.3f} s "
              f"(its fire time {late:6.3f} s earlier)", flush=True)
        return dispatch, elected, late


MEASURES = (
    (0, "signal -> first dispatch"),
    (1, "signal -> new leader elected"),
    (2, "first dispatch late by"),
)


def table(results: dict[str, list[tuple[float, float, float]]], idle_timeout: int) -> str:
    width = 40
    lines = [f"{'seconds':<{width}} {'trials':>6} {'median':>8} {'min':>8} {'max':>8}"]
    for kind, rows in results.items():
        lines.append(f"{kind}" + (f" (lock idle timeout {idle_timeout} s)" if kind == "SIGSTOP" else ""))
        for index, label in MEASURES:
            values = [row[index] for row in rows]
            lines.append(f"  {label:<{width - 2}} {len(values):>6} {statistics.median(values):>8.3f} "
                         f"{min(values):>8.3f} {max(values):>8.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="SIGKILL trials (default 10)")
    parser.add_argument("--stop-trials", type=int, default=3, help="SIGSTOP trials (default 3)")
    parser.add_argument("--idle-timeout", type=int, default=10,
                        help="lock idle timeout in seconds, what bounds a SIGSTOP failover (default 10)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="seeds the random phase of each signal")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        parser.error("set DATABASE_URL (e.g. mysql://root@127.0.0.1:3306/scheduler_bench)")

    prepare_django(url)
    procs = Processes(url, log_dir=REPO / "var" / "bench-logs",
                      env={"SCHEDULER_LOCK_IDLE_TIMEOUT": str(args.idle_timeout)}, lock_prefix="sched_bench")
    # Ctrl-C or SIGTERM: leave through the finally below, which ends every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cluster = Cluster(procs).start(schedulers=[f"n{i}" for i in range(1, args.nodes + 1)],
                                       executors=["bench-executor"], demo=True)
        task = cluster.make_task("echo", cron=EVERY_SECOND, executors=["bench-executor"], timeout_seconds=5,
                                 parameters={"bench": True})
        bench = Bench(cluster, task["id"], random.Random(args.seed))
        print(f"cluster up: {args.nodes} nodes, lock idle timeout {args.idle_timeout} s, logs in {procs.log_dir}",
              flush=True)
        started = time.monotonic()
        for kind, trials in (("SIGKILL", args.trials), ("SIGSTOP", args.stop_trials)):
            for _ in range(trials):
                bench.trial(kind)
        duplicates = cluster.duplicate_fires()
        print()
        print(table(bench.results, args.idle_timeout))
        print(f"\nduplicate fires recorded: {len(duplicates)}; bench took {time.monotonic() - started:.0f} s")
        return 1 if duplicates else 0
    except Exception:
        print("\n" + procs.tails(20), file=sys.stderr)
        raise
    finally:
        procs.close()


if __name__ == "__main__":
    raise SystemExit(main())
