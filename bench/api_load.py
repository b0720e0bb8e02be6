"""Workload 5: a million execution rows, then the read endpoints under wrk against gunicorn."""

from __future__ import annotations

import enum
import json
import os
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.limits import run_wrk

REPO = Path(__file__).resolve().parent.parent
CHUNK = 5000
# Final statuses in roughly the proportions a healthy installation has.
STATUSES = ["success"] * 90 + ["failed"] * 6 + ["timeout"] * 2 + ["skipped", "cancelled"]
WRK_TIMEOUT = 10  # seconds; slower answers count as timeouts
WRK_CONNECTIONS = 2  # one request in flight per core: latency, not queueing behind a saturated server


def populate(ours, *, tasks: int, rows: int) -> list[str]:
    """Creates ``tasks`` tasks and ``rows`` executions spread evenly over them and the last 90 days,
    with multi-row INSERTs (mysqlclient's executemany). Returns the task ids."""
    task_ids = ours.create_tasks({"name": f"api-{i}", "cron_expression": "0 0 3 * * *"} for i in range(tasks))
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    per_task = max(1, rows // tasks)
    step = timedelta(days=90) / per_task
    rng = random.Random(8)

    def rows_to_insert():
        for n in range(rows):
            task_index, j = n % tasks, n // tasks
            scheduled = now - timedelta(days=90) + step * j + timedelta(milliseconds=task_index)
            status = STATUSES[rng.randrange(len(STATUSES))]
            duration = rng.randrange(100, 5000) if status in ("success", "failed", "timeout") else None
            start = scheduled + timedelta(milliseconds=50) if duration is not None else None
            end = start + timedelta(milliseconds=duration) if start is not None else scheduled
            yield {
                "id": f"bench-{n:09d}", "task_id": task_ids[task_index], "executor_id": ours.executor_id,
                "scheduled_time": scheduled, "start_time": start, "end_time": end, "status": status,
                "result": json.dumps({"ok": status == "success"}), "logs": "", "retry_count": 0,
                "created_at": scheduled, "trigger_type": "scheduled", "parameters": "{}",
                "dispatch_after": scheduled, "deadline": None, "duration_ms": duration, "progress_percent": None,
                "progress_step": "", "progress_updated_at": None, "retry_of_id": None,
            }

    insert_executions(rows_to_insert())
    return task_ids


SETTLE_LIMIT_SECONDS = 180  # at most this long waiting for InnoDB to write back the populate's pages
SETTLED_DIRTY_PAGES = 200
WARMUP_SECONDS = 2


def settle() -> float:
    """Wait until InnoDB has written back most of the pages the populate dirtied (bounded): its background
    flush of a million fresh rows otherwise lands on whichever endpoint is measured first (p99 136 ms for
    the first endpoint right after the populate, 39 ms for the same endpoint later). Returns seconds waited."""
    from django.db import connection

    began = time.monotonic()
    with connection.cursor() as cursor:
        while time.monotonic() - began < SETTLE_LIMIT_SECONDS:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            row = cursor.fetchone()
            if row is None or int(row[1]) <= SETTLED_DIRTY_PAGES:
                break
            time.sleep(1)
    return time.monotonic() - began


def measure(web, path: str, headers: dict[str, str], seconds: int) -> dict:
    """One endpoint: a short warm-up (discarded: first-touch page reads, connection set-up), then wrk."""
    wrk(web.url + path, headers, WARMUP_SECONDS)
    return wrk_with_cpu(web, path, headers, seconds)


def insert_executions(rows) -> None:
    """Inserts execution rows (see ``insert_rows``), then refreshes the table's statistics."""
    from executions.models import TaskExecution

    insert_rows(TaskExecution, rows, analyze=True)


def insert_rows(model, rows, *, analyze: bool = False) -> None:
    """Inserts ``rows`` (dicts of column values by attname; columns left out take their model default) with
    the driver's executemany, CHUNK at a time, without building model instances: a
    million ORM objects cost minutes. Datetimes go in as naive UTC, dicts and lists as JSON text."""
    from django.db import connection

    fields = list(model._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = (f"INSERT INTO {model._meta.db_table} ({columns}) "  # noqa: S608 - model metadata only
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    batch: list[tuple] = []
    mysql = connection.vendor == "mysql"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # mysqlclient's executemany sends multi-row INSERTs; psycopg's pipelines them
        if mysql:
            raw.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        for values in rows:
            batch.append(tuple(_column_value(values[f.attname]) if f.attname in values else _default(f)
                               for f in fields))
            if len(batch) >= CHUNK:
                raw.executemany(sql, batch)
                batch.clear()
        if batch:
            raw.executemany(sql, batch)
        if mysql:
            raw.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")
        if analyze:
            raw.execute(f"ANALYZE {'TABLE ' if mysql else ''}{model._meta.db_table}")


def _column_value(value):
    if isinstance(value, enum.Enum):  # TextChoices members
        return value.value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _default(field):
    """A column the bench does not know (added by a later migration): its model default, or NULL."""
    if field.has_default():
        return _column_value(field.get_default())
    return None


def endpoints(task_ids: list[str]) -> list[tuple[str, str, int | None]]:
    """(name, path, p99 target in ms or None for information only)."""
    task = task_ids[len(task_ids) // 2]
    day_end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    day_start = day_end - timedelta(days=1)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return [
        ("executions list, task_id+status, page 2", f"/api/v1/executions?task_id={task}&status=success&page=2"
                                                   "&page_size=20", 100),
        ("executions list, status+1-day range", f"/api/v1/executions?status=failed,timeout"
                                                f"&start_time={day_start:{iso}}&end_time={day_end:{iso}}", 100),
        ("executions list, unfiltered, page 1", "/api/v1/executions?page=1&page_size=20", 100),
        ("task stats", f"/api/v1/tasks/{task}/stats", 300),
        ("executions stats, one task", f"/api/v1/executions/stats?task_id={task}", 300),
        ("executions stats, all rows", "/api/v1/executions/stats", 300),
    ]


def wrk(url: str, headers: dict[str, str], seconds: int) -> dict:
    """p50/p99 (ms), requests/s and non-2xx count from ``wrk --latency``."""
    args = ["-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", f"{WRK_TIMEOUT}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = run_wrk([*args, url])
    result: dict = {"raw": output}
    for label, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match:
            result[key] = float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["rps"] = float(match.group(1)) if match else None
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["errors"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors:.*timeout (\d+)", output)
    result["timeouts"] = int(match.group(1)) if match else 0
    match = re.search(r"(\d+) requests in", output)
    if not match or int(match.group(1)) == 0:
        # Nothing completed within wrk's --timeout: wrk prints zeros, which must not read as fast.
        result.update(p50_ms=None, p99_ms=None, rps=0.0)
    return result


# -- standalone: workload 5 alone, on a database kept between runs ------------------------------------

def gunicorn_cpu_seconds(master_pid: int) -> float:
    """User + system CPU seconds of gunicorn's workers (the master's children), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for child in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
    return total


def wrk_with_cpu(web, path: str, headers: dict[str, str], seconds: int) -> dict:
    """``wrk`` against gunicorn ``web``, plus ``cpu_ms``: the workers' CPU per completed request, a figure
    that other load on a shared machine disturbs far less than wall-clock percentiles."""
    before = gunicorn_cpu_seconds(web.pid)
    result = wrk(web.url + path, headers, seconds)
    spent = gunicorn_cpu_seconds(web.pid) - before
    done = re.search(r"(\d+) requests in", result["raw"])
    result["cpu_ms"] = spent * 1000 / int(done.group(1)) if done and int(done.group(1)) else None
    return result


def _populated(tasks: int, rows: int) -> list[str] | None:
    """The task ids of an earlier populate() of the same size on this database, or None."""
    from executions.models import TaskExecution
    from tasks.models import Task

    task_ids = list(Task.objects.filter(name__startswith="api-").order_by("created_at", "id")
                    .values_list("id", flat=True))
    if len(task_ids) != tasks or TaskExecution.objects.filter(id__startswith="bench-").count() != rows:
        return None
    by_name = dict(Task.objects.filter(pk__in=task_ids).values_list("name", "id"))
    return [by_name[f"api-{i}"] for i in range(tasks)]


def main() -> int:
    """``python -m bench.api_load --database-url mysql://.../scheduler_x_bench [--reuse]``: workload 5 alone.
    With --reuse, rows an earlier run of the same size inserted are kept (the database is otherwise emptied
    and populated again, as ``bench.run`` always does); the figures of a reused run are not bench results."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"), required=False)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="keep rows of an earlier run of the same size")
    parser.add_argument("--only", help="run only the endpoints whose name contains this text")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url or BENCH_DATABASE_URL is required (a database this run may empty)")

    from bench.failover import create_database
    from bench.ours import Ours, flush

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")
    create_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    task_ids = _populated(args.tasks, args.rows) if args.reuse else None
    ours = Ours(args.database_url, "http://127.0.0.1:9", REPO / "var" / "bench-run" / "api-alone")
    try:
        if task_ids is None:
            flush()
            ours.executor_id = _register_executor()
            began = time.monotonic()
            task_ids = populate(ours, tasks=args.tasks, rows=args.rows)
            print(f"populated {args.rows} rows in {time.monotonic() - began:.0f} s; settled in {settle():.0f} s",
                  flush=True)
        ours.start_web()
        ours.create_api_key()
        for name, path, target in endpoints(task_ids):
            if args.only and args.only not in name:
                continue
            result = measure(ours.web, path, ours.auth_headers(), args.seconds)
            cpu_ms = result["cpu_ms"]
            print(f"{name:42} p50 {result.get('p50_ms')} ms  p99 {result.get('p99_ms')} ms (target {target})  "
                  f"{result.get('rps')} req/s  gunicorn CPU {cpu_ms and round(cpu_ms, 1)} ms/request"
                  + (f"  {result['errors']} non-2xx" if result.get("errors") else ""), flush=True)
    finally:
        ours.close()
    return 0


def _register_executor() -> str:
    """The executor the rows name (never called: no scheduler runs in this workload)."""
    from executors.services import executor_register

    data = {"name": "bench-stub", "instance_id": "bench-stub-1", "base_url": "http://127.0.0.1:9"}
    return executor_register(data=data, now=datetime.now(UTC)).executor.pk


if __name__ == "__main__":
    raise SystemExit(main())
