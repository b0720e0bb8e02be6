"""The database primary restarts under load (issue #21, item 4): how long firing stops, what each misfire policy
does with the fire times it missed, and that nothing ran twice.

    .venv/bin/python -m bench.db_restart --database mariadb      # restarts THIS MACHINE'S MariaDB server
    .venv/bin/python -m bench.db_restart --database postgresql   # restarts this machine's PostgreSQL cluster

It restarts the real server (everything else using it sees the restart too): run it alone. Our system runs
at the README's defaults on a database of its own (``sched_db_restart``, emptied): gunicorn, two scheduler
nodes, the bench's stub executor, and ``--tasks`` every-second tasks (the offered rate), a third of them per
misfire policy. After ``--warmup`` seconds the server is stopped (MariaDB: ``mariadb-admin shutdown``;
PostgreSQL: ``pg_ctlcluster ... stop -m fast``), held down ``--down`` seconds, and started again; the run goes
on ``--after`` seconds. Printed: the outage as the bench saw it, the time from the server's return to the
first dispatch after it, the largest gap between dispatches the executor received, and per policy the fire
times that fell due while the database was down: executed (late), recorded skipped, or folded into one run.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

URLS = {"mariadb": "mysql://root@127.0.0.1:3306/sched_db_restart",
        "postgresql": "postgres://postgres@127.0.0.1:5432/sched_db_restart"}
POLICIES = ("fire_once", "fire_all", "skip")


def stop_server(which: str) -> None:
    if which == "mariadb":
        subprocess.run(["mariadb-admin", "-uroot", "-h127.0.0.1", "shutdown"], check=True, timeout=120)  # noqa: S603, S607
    else:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "stop", "-m", "fast"],  # noqa: S603, S607
                       check=True, timeout=120)


def start_server(which: str) -> None:
    if which == "mariadb":
        subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec",  # noqa: S603, S607
                        "/usr/sbin/mariadbd"], check=True, timeout=60)
    else:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "start"],  # noqa: S603, S607
                       check=True, timeout=120)


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def server_answers() -> bool:
    from django.db import DatabaseError, connection

    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=sorted(URLS), required=True)
    parser.add_argument("--tasks", type=int, default=300, help="every-second tasks: the offered fires/s")
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--down", type=float, default=10, help="seconds the server stays stopped")
    parser.add_argument("--after", type=float, default=40)
    args = parser.parse_args()

    from bench.ours import Ours, prepare_database
    from bench.run import EVERY_SECOND, LOG_ROOT, Bench, Sizes, lateness
    from tests.processes import wait_for

    url = URLS[args.database]
    prepare_database(url)
    bench = Bench(Sizes(), LOG_ROOT / f"db-restart-{args.database}")
    bench.start_stub()
    ours = Ours(url, bench.stub_url, bench.log_dir("ours"))
    try:
        ours.start_web()
        ours.register_stub()
        ours.start_scheduler("bench-1")
        ours.wait_leader("bench-1")
        ours.start_scheduler("bench-2")  # the standby: whichever node leads after the restart
        ids = ours.create_tasks({"name": f"restart-{i}", "cron_expression": EVERY_SECOND,
                                 "misfire_policy": POLICIES[i % len(POLICIES)]} for i in range(args.tasks))
        policy_of = {task_id: POLICIES[i % len(POLICIES)] for i, task_id in enumerate(ids)}
        time.sleep(args.warmup)
        stopped_at = time.time()
        stop_server(args.database)
        down_seen = time.time()
        time.sleep(max(0.0, stopped_at + args.down - time.time()))
        start_server(args.database)
        wait_for(server_answers, 120, interval=0.1, message="the database server to answer again")
        back_at = time.time()
        time.sleep(args.after)
        records = bench.stub_records("ours")
    finally:
        ours.close()
        if bench.stub is not None:
            bench.stub.end()
    print(report(args, records, policy_of, stopped_at=stopped_at, down_seen=down_seen, back_at=back_at,
                 late=lateness(records)))
    return 0


def report(args, records, policy_of: dict[str, str], *, stopped_at: float, down_seen: float, back_at: float,
           late: dict) -> str:
    from executions.models import TaskExecution

    received = sorted(record[2] for record in records)
    after = [t for t in received if t > back_at]
    gaps = [b - a for a, b in zip(received, received[1:], strict=False)]
    largest = max(gaps) if gaps else None
    duplicates = sum(n - 1 for n in Counter((r[0], r[1]) for r in records).values() if n > 1)
    # Fire times that fell due while the database was stopped or starting: from the stop to its return.
    first, last = math.ceil(stopped_at), math.floor(back_at)
    missed_window = [datetime.fromtimestamp(t, UTC) for t in range(first, last + 1)]
    rows = TaskExecution.objects.filter(scheduled_time__gte=missed_window[0], scheduled_time__lte=missed_window[-1],
                                        retry_count=0).values_list("task_id", "scheduled_time", "status", "logs")
    handled: dict[str, Counter] = defaultdict(Counter)
    for task_id, _, status, logs in rows:
        policy = policy_of.get(task_id)
        if policy is None:
            continue
        kind = "skipped (misfire)" if status == "skipped" and "misfire" in logs else status
        handled[policy][kind] += 1
    expected = {policy: sum(1 for p in policy_of.values() if p == policy) * len(missed_window) for policy in POLICIES}
    lines = [f"database {args.database}: server stopped at +0.00 s (the command took {down_seen - stopped_at:.2f} s), "
             f"answering again at +{back_at - stopped_at:.2f} s",
             "first dispatch after it answered: "
             + (f"+{after[0] - back_at:.2f} s after its return ({after[0] - stopped_at:.2f} s after the stop)"
                if after else "none"),
             f"largest gap between dispatches the executor received: {largest:.2f} s" if largest is not None else
             "no dispatches", f"dispatches received {len(records)}, duplicated {duplicates}; "
                              f"lateness p50 {late['p50']:.3f} s, p99 {late['p99']:.3f} s over the whole run",
             f"fire times due while the database was away: {len(missed_window)} s x {args.tasks} tasks"]
    for policy in POLICIES:
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(handled[policy].items())) or "no rows"
        folded = expected[policy] - sum(handled[policy].values())
        lines.append(f"  {policy:9}: {expected[policy]} fire times -> rows: {counts}; no row of their own: {folded}"
                     + (" (folded: each task's missed times run once)" if policy == "fire_once" and folded else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
