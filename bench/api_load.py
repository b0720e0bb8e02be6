"""Workload 5: a million execution rows, then the read endpoints under wrk against gunicorn."""

from __future__ import annotations

import json
import random
import re
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
    from django.db import connection

    from executions.models import TaskExecution

    task_ids = ours.create_tasks({"name": f"api-{i}", "cron_expression": "0 0 3 * * *"} for i in range(tasks))
    fields = [f for f in TaskExecution._meta.concrete_fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = (f"INSERT INTO {TaskExecution._meta.db_table} ({columns}) "  # noqa: S608 - model metadata only
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    per_task = max(1, rows // tasks)
    step = timedelta(days=90) / per_task
    rng = random.Random(8)
    batch: list[tuple] = []
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the mysqlclient cursor: executemany becomes multi-row INSERT statements
        raw.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        for n in range(rows):
            task_index, j = n % tasks, n // tasks
            scheduled = now - timedelta(days=90) + step * j + timedelta(milliseconds=task_index)
            status = STATUSES[rng.randrange(len(STATUSES))]
            duration = rng.randrange(100, 5000) if status in ("success", "failed", "timeout") else None
            start = scheduled + timedelta(milliseconds=50) if duration is not None else None
            end = start + timedelta(milliseconds=duration) if start is not None else scheduled
            values = {
                "id": f"bench-{n:09d}", "task_id": task_ids[task_index], "executor_id": ours.executor_id,
                "scheduled_time": scheduled, "start_time": start, "end_time": end, "status": status,
                "result": json.dumps({"ok": status == "success"}), "logs": "", "retry_count": 0,
                "created_at": scheduled, "trigger_type": "scheduled", "parameters": "{}",
                "dispatch_after": scheduled, "deadline": None, "duration_ms": duration, "progress_percent": None,
                "progress_step": "", "progress_updated_at": None, "retry_of_id": None,
            }
            batch.append(tuple(values.get(f.attname, _default(f)) for f in fields))
            if len(batch) >= CHUNK:
                raw.executemany(sql, batch)
                batch.clear()
        if batch:
            raw.executemany(sql, batch)
        raw.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")
        raw.execute(f"ANALYZE TABLE {TaskExecution._meta.db_table}")
    return task_ids


def _default(field):
    """A column the bench does not know (added by a later migration): its model default, or NULL."""
    if field.has_default():
        value = field.get_default()
        return json.dumps(value) if isinstance(value, (dict, list)) else value
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
