"""Results applied per second: one signed callback per result vs. batches (POST /api/v1/executions/callbacks).

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_b_bench .venv/bin/python -m bench.callbacks \
        --singles 2000 --batched 20000 --batch 100 --threads 4

Creates running executions dispatched to one executor, starts the API under gunicorn as the bench does
(bench.ours.GunicornWeb: 3 workers x 4 threads), then reports their results from a few client threads over
keep-alive connections, signed like an executor: first one request per result, then ``--batch`` results per
request. Each phase has its own executions. Prints results applied per second (wall clock, and checked in
the database afterwards) and the web server's CPU seconds per 1000 results, which a shared machine disturbs
less than the wall clock.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psutil

from bench.ours import Ours, prepare_database
from core.clock import utc_now

BATCH_PATH = "/api/v1/executions/callbacks"


@dataclass
class Phase:
    name: str
    results: int
    seconds: float = 0.0
    web_cpu_seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    applied_in_db: int = 0

    def line(self) -> str:
        return (f"{self.name:>22}: {self.results} results in {self.seconds:.2f} s = "
                f"{self.results / self.seconds:,.0f} applied/s; web CPU {self.web_cpu_seconds:.2f} s "
                f"({1000 * self.web_cpu_seconds / self.results:.2f} s per 1000 results); "
                f"HTTP {dict(self.statuses)}; success rows in the database {self.applied_in_db}")


def running_executions(executor, count: int, label: str) -> list[str]:
    """``count`` running executions of a new task (no retries), dispatched to ``executor``."""

    from executions.models import TaskExecution
    from tasks.models import Task

    task = Task.objects.create(name=f"callbacks-{label}", cron_expression="0 0 0 1 1 *", max_retry=0)
    start = utc_now()
    rows = [TaskExecution(task=task, executor=executor, status="running", start_time=start,
                          scheduled_time=start - timedelta(milliseconds=n)) for n in range(count)]
    TaskExecution.objects.bulk_create(rows, batch_size=1000)
    return [row.pk for row in rows]


def signed_post(connection: http.client.HTTPConnection, executor, path: str, payload: dict) -> int:
    from scheduler_sdk.signing import signature_headers

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json",
               **signature_headers(executor.secret, "POST", path, body, executor_id=executor.pk)}
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def run_clients(port: int, requests_: list[tuple[str, dict]], threads: int, executor) -> Counter:
    """Sends every (path, body) from ``threads`` threads, each on its own keep-alive connection."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    shares = [requests_[n::threads] for n in range(threads)]

    def client(share: list[tuple[str, dict]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seen: Counter = Counter()
        for path, payload in share:
            seen[signed_post(connection, executor, path, payload)] += 1
        connection.close()
        with lock:
            statuses.update(seen)

    workers = [threading.Thread(target=client, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def web_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of gunicorn's master and workers so far."""
    master = psutil.Process(pid)
    total = 0.0
    for process in [master, *master.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measure(name: str, ids: list[str], build: Callable[[list[str]], list[tuple[str, dict]]], *, port: int,
            web_pid: int, threads: int, executor) -> Phase:
    from executions.models import TaskExecution

    phase = Phase(name, len(ids))
    requests_ = build(ids)
    cpu = web_cpu_seconds(web_pid)
    began = time.perf_counter()
    phase.statuses = run_clients(port, requests_, threads, executor)
    phase.seconds = time.perf_counter() - began
    phase.web_cpu_seconds = web_cpu_seconds(web_pid) - cpu
    phase.applied_in_db = TaskExecution.objects.filter(pk__in=ids, status="success").count()
    return phase


def one_per_request(ids: list[str]) -> list[tuple[str, dict]]:
    return [(f"/api/v1/executions/{execution_id}/callback", {"status": "success", "result": {"bench": 1}})
            for execution_id in ids]


def batches_of(size: int) -> Callable[[list[str]], list[tuple[str, dict]]]:
    def build(ids: list[str]) -> list[tuple[str, dict]]:
        return [(BATCH_PATH, {"results": [{"execution_id": execution_id, "status": "success", "result": {"bench": 1}}
                                          for execution_id in ids[start:start + size]]})
                for start in range(0, len(ids), size)]

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--singles", type=int, default=2000, help="results sent one per request")
    parser.add_argument("--batched", type=int, default=20000, help="results sent in batches")
    parser.add_argument("--batch", type=int, default=100, help="results per batch request")
    parser.add_argument("--threads", type=int, default=4, help="client threads (one connection each)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "mysql://root@127.0.0.1:3306/scheduler_b_bench")

    prepare_database(url)
    from executors.models import Executor

    executor = Executor.objects.create(name="callbacks-bench", instance_id="callbacks-bench-1",
                                       base_url="http://127.0.0.1:9")
    singles = running_executions(executor, args.singles, "singles")
    batched = running_executions(executor, args.batched, "batched")
    ours = Ours(url, stub_url="http://127.0.0.1:9", log_dir=Path(tempfile.mkdtemp(prefix="bench-callbacks-")))
    try:
        web = ours.start_web()
        common = {"port": web.port, "web_pid": web.pid, "threads": args.threads, "executor": executor}
        phases = [measure("one per request", singles, one_per_request, **common),
                  measure(f"batches of {args.batch}", batched, batches_of(args.batch), **common)]
    finally:
        ours.close()
    print(f"gunicorn 3 workers x 4 threads, {args.threads} client threads, database {url.rsplit('/', 1)[-1]}")
    for phase in phases:
        print(phase.line())


if __name__ == "__main__":
    main()
