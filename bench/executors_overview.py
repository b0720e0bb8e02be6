"""The console's executors at a glance at scale (issue #22): many executors and a million executions, then the
page rendered in-process through the admin view (queries, sparklines, template), several times, with the plan
of each grouped query.

The history: ``--rows`` runs over the last 7 days spread over ``--executors`` executors, a few hundred of them
running (some with their lease run out). Needs MariaDB (``BENCH_DATABASE_URL``, default
``mysql://root@127.0.0.1:3306/scheduler_executors_bench``); ``--reuse`` skips the populate.

    .venv/bin/python -m bench.executors_overview [--reuse] [--rows 1000000] [--executors 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

DEFAULT_URL = "mysql://root@127.0.0.1:3306/scheduler_executors_bench"
TASKS = 2_000
RUNNING = 400
STATUSES = ["success"] * 90 + ["failed"] * 6 + ["timeout"] * 2 + ["skipped", "cancelled"]


def populate(rows: int, executors: int) -> None:
    from bench.api_load import insert_executions
    from executors.models import Executor
    from tasks.models import Task

    now = datetime.now(UTC).replace(microsecond=0)
    tasks = Task.objects.bulk_create([Task(name=f"ex-{i:05d}", cron_expression="0 * * * * *") for i in range(TASKS)],
                                     batch_size=2000)
    fleet = Executor.objects.bulk_create([
        Executor(name=f"worker-{i:04d}", instance_id=f"worker-{i:04d}", base_url=f"http://10.0.{i // 250}.{i % 250}:80",
                 last_health_check=now - timedelta(seconds=i % 90))
        for i in range(executors)], batch_size=1000)
    task_ids, executor_ids = [task.pk for task in tasks], [executor.pk for executor in fleet]
    rng = random.Random(22)
    naive_now = now.replace(tzinfo=None)

    def history():
        for n in range(rows):
            running = n < RUNNING
            scheduled = naive_now - timedelta(seconds=rng.randrange(60 if running else 7 * 86400), microseconds=n)
            status = "running" if running else STATUSES[rng.randrange(len(STATUSES))]
            lease = naive_now + timedelta(seconds=rng.randrange(-30 if n % 40 == 0 else 1, 15)) if running else None
            yield {"id": f"ex-{n:09d}", "task_id": task_ids[n % TASKS], "executor_id": executor_ids[n % executors],
                   "scheduled_time": scheduled, "start_time": scheduled, "status": status, "result": "{}",
                   "logs": "", "retry_count": 0, "created_at": scheduled, "trigger_type": "scheduled",
                   "parameters": "{}", "lease_until": lease, "attempt": 1,
                   "ended_by_scheduler": status == "failed" and n % 3 == 0}

    insert_executions(history())


def plans(queries: list[dict]) -> list[tuple[str, list[tuple]]]:
    """EXPLAIN of each query over the executions that a render ran (as sent, parameters included)."""
    from django.db import connection

    captured = []
    with connection.cursor() as cursor:
        for query in queries:
            if "task_executions" in query["sql"]:
                cursor.execute(f"EXPLAIN {query['sql']}")
                captured.append((query["sql"][:90], cursor.fetchall()))
    return captured


def measure(rounds: int) -> tuple[list[float], list[dict]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = get_user_model().objects.get_or_create(username="executors-bench", defaults={"is_staff": True,
                                                                                          "is_superuser": True})
    client = Client()
    client.force_login(user)
    times = []
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get("/admin/executors-overview/", HTTP_HOST="127.0.0.1")
            times.append(time.perf_counter() - began)
        assert response.status_code == 200, response.status_code
    print(f"{len(queries)} queries, {len(response.content):,} bytes; slowest queries:")
    for query in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:3]:
        print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:110]}")
    return times, queries.captured_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep the database as it is (already populated)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--executors", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from bench.ours import open_database

    if open_database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL), reuse=args.reuse):
        began = time.monotonic()
        populate(args.rows, args.executors)
        print(f"populated {args.executors:,} executors and {args.rows:,} executions in "
              f"{time.monotonic() - began:.0f} s")
    print(f"load average {os.getloadavg()[0]:.2f}; executors page (first 50), {args.rounds} renders:")
    times, queries = measure(args.rounds)
    print(f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    for sql, rows in plans(queries):
        print(f"plan of {sql}…:")
        for row in rows:
            print("  ", row)


if __name__ == "__main__":
    main()
