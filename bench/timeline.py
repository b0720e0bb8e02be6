"""The console's timeline at scale (issue #22): 100,000 tasks and 1,000,000 executions, then the timeline page
rendered for each zoom preset, in-process through the admin view (queries, SVG, template), several times.

The history is shaped to stress the budgets: 1,000,000 runs in the last 7 days, 100,000 tasks each with a few
runs (and an hourly cron, so upcoming fires exist), and a handful of per-second tasks whose lanes hold tens of
thousands of runs each (folded into cells). Needs MariaDB (``BENCH_DATABASE_URL``, default
``mysql://root@127.0.0.1:3306/scheduler_timeline_bench``); ``--reuse`` skips the populate.

    .venv/bin/python -m bench.timeline [--reuse] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

DEFAULT_URL = "mysql://root@127.0.0.1:3306/scheduler_timeline_bench"
TASKS = 100_000
ROWS = 1_000_000
BUSY_TASKS = 5  # per-second tasks: ~40,000 runs each over the last 12 hours
BUSY_ROWS = 200_000
STATUSES = ["success"] * 90 + ["failed"] * 6 + ["timeout"] * 2 + ["skipped", "cancelled"]


def populate() -> None:
    from bench.api_load import insert_executions
    from tasks.models import Task

    now = datetime.now(UTC).replace(microsecond=0)
    tasks = [Task(name=f"tl-{i:06d}", cron_expression=f"0 {i % 60} * * * *", status="active",
                  next_run_time=now + timedelta(minutes=i % 60 + 1)) for i in range(TASKS)]
    tasks += [Task(name=f"tl-busy-{i}", cron_expression="* * * * * *", status="active",
                   next_run_time=now + timedelta(seconds=1)) for i in range(BUSY_TASKS)]
    Task.objects.bulk_create(tasks, batch_size=5000)
    ids = [task.pk for task in tasks]
    rng = random.Random(22)
    naive_now = now.replace(tzinfo=None)

    def rows():
        for n in range(ROWS):
            if n < BUSY_ROWS:
                task_id = ids[TASKS + n % BUSY_TASKS]
                scheduled = naive_now - timedelta(seconds=n // BUSY_TASKS + 1)
            else:
                task_id = ids[n % TASKS]
                # A task's k-th run gets k ms past a random second: no two of a task's runs share a fire time.
                scheduled = naive_now - timedelta(seconds=rng.randrange(7 * 86400), milliseconds=n // TASKS)
            duration = rng.randrange(100, 5000)
            yield {"id": f"tl-{n:09d}", "task_id": task_id, "scheduled_time": scheduled,
                   "start_time": scheduled, "end_time": scheduled + timedelta(milliseconds=duration),
                   "status": STATUSES[rng.randrange(len(STATUSES))], "result": "{}", "logs": "",
                   "retry_count": 0, "created_at": scheduled, "trigger_type": "scheduled", "parameters": "{}",
                   "duration_ms": duration}

    insert_executions(rows())


def measure(rounds: int) -> list[tuple[str, float, float, int, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = get_user_model().objects.get_or_create(username="timeline-bench", defaults={"is_staff": True,
                                                                                         "is_superuser": True})
    client = Client()
    client.force_login(user)
    results = []
    for zoom in ("1h", "6h", "24h", "7d"):
        times = []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(f"/admin/timeline/?zoom={zoom}", HTTP_HOST="127.0.0.1")
                times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.status_code
        results.append((zoom, statistics.median(times), max(times), len(queries), len(response.content)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep the database as it is (already populated)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from bench.ours import open_database

    if open_database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL), reuse=args.reuse):
        began = time.monotonic()
        populate()
        print(f"populated {TASKS + BUSY_TASKS:,} tasks and {ROWS:,} executions in {time.monotonic() - began:.0f} s")
    print(f"load average {os.getloadavg()[0]:.2f}; timeline page, {args.rounds} renders per zoom:")
    print("zoom | median ms | max ms | queries | page bytes")
    for zoom, median, worst, queries, size in measure(args.rounds):
        print(f"{zoom:>4} | {median * 1000:9.0f} | {worst * 1000:6.0f} | {queries:7d} | {size:,}")


if __name__ == "__main__":
    main()
