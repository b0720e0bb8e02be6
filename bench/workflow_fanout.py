"""Workflow benchmark: a 100-node fan-out/fan-in (root -> 100 branches -> join), run after run.

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_bench .venv/bin/python bench/workflow_fanout.py --runs 5

Creates (if needed), migrates and empties the database named in DATABASE_URL (it is the bench's own), starts a
web server, one ``runscheduler`` node with the production tick (0.2 s) and the journalling test executor
(tests/e2e/journal_executor.py, 128 workers) on loopback. The branches sleep 0.1-0.5 s each, so they end one
by one. Per run it measures, on the executor's clock (its journal):

- fan-in: from the last branch's handler ending to the join's dispatch arriving at the executor (the
  callback, the run's advance in the callback's transaction, the leader's next tick, the claim and the POST);
- fan-out: from the root's handler ending to each branch's dispatch arriving (100 samples per run);
- the same on the database's clock: a parent's end_time (as its executor reported it) to the child's claim
  (start_time), which leaves out the POST to the executor.

Target (issue #19): fan-in p99 <= 0.5 s. Child logs go to var/bench-logs/.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

from bench.failover import prepare_django  # noqa: E402 - needs the repository on sys.path
from tests.processes import Cluster, Processes  # noqa: E402

BRANCHES = 100
EXECUTOR = "bench-executor"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def line(label: str, values: list[float]) -> str:
    return (f"{label:<32} n={len(values):<5} p50 {statistics.median(values):.3f} s   "
            f"p99 {percentile(values, 0.99):.3f} s   max {max(values):.3f} s")


class Bench:
    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.fan_in: list[float] = []
        self.fan_in_db: list[float] = []
        self.fan_out: list[float] = []
        self.fan_out_db: list[float] = []
        self.workflow_id = self._create()

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        import requests

        response = requests.request(method, f"{self.cluster.web.url}/api/v1/{path}", json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {self.cluster.admin_api_key()}"})
        response.raise_for_status()
        return response.json()["data"]

    def _create(self) -> str:
        tasks = {name: self.cluster.make_task(name, executors=[EXECUTOR], max_retry=0, timeout_seconds=60)["id"]
                 for name in ("echo.bench-root", "sleep.bench-branch", "echo.bench-join")}
        nodes = [{"name": "root", "task_id": tasks["echo.bench-root"]},
                 *({"name": f"b{i:03}", "task_id": tasks["sleep.bench-branch"],
                    "parameters": {"seconds": round(self.rng.uniform(0.1, 0.5), 3)}} for i in range(BRANCHES)),
                 {"name": "join", "task_id": tasks["echo.bench-join"]}]
        edges = [*({"parent": "root", "child": f"b{i:03}"} for i in range(BRANCHES)),
                 *({"parent": f"b{i:03}", "child": "join"} for i in range(BRANCHES))]
        return self._api("POST", "workflows", {"name": "bench fan", "nodes": nodes, "edges": edges})["id"]

    def run_once(self) -> None:
        from executions.models import TaskExecution
        from workflows.models import WorkflowRun

        run_id = self._api("POST", f"workflows/{self.workflow_id}/trigger")["id"]
        run = self.cluster.wait_until(
            lambda: WorkflowRun.objects.filter(pk=run_id).exclude(status="running").first(), 120, "the run to end")
        if run.status != "success":
            raise SystemExit(f"run {run_id} ended {run.status}: {run.reason}")
        rows = {row.node_key.rsplit(":", 1)[1]: row for row in TaskExecution.objects.filter(workflow_run_id=run_id)}
        executor = self.cluster.executors[EXECUTOR]
        ends = {e["execution_id"]: e["t"] for e in executor.events("end")}
        arrivals = {e["execution_id"]: e["t"] for e in executor.events("execute")}
        branches = [rows[f"b{i:03}"] for i in range(BRANCHES)]
        self.fan_in.append(arrivals[rows["join"].pk] - max(ends[b.pk] for b in branches))
        self.fan_in_db.append((rows["join"].start_time - max(b.end_time for b in branches)).total_seconds())
        self.fan_out += [arrivals[b.pk] - ends[rows["root"].pk] for b in branches]
        self.fan_out_db += [(b.start_time - rows["root"].end_time).total_seconds() for b in branches]


def start_cluster(procs: Processes) -> Cluster:
    cluster = Cluster(procs).start(schedulers=["n1"], executors=[])
    child = procs.start_executor(EXECUTOR, max_workers=128)
    cluster.executors[EXECUTOR] = child
    cluster.executor_ids[EXECUTOR] = procs.wait_until(lambda: cluster.executor_pk(EXECUTOR), 30,
                                                      "the executor to register", watch=[child])
    return cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tick", default="0.2", help="the scheduler's idle tick in seconds (production: 0.2)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        parser.error("set DATABASE_URL (e.g. mysql://root@127.0.0.1:3306/scheduler_bench)")
    prepare_django(url)
    procs = Processes(url, log_dir=REPO / "var" / "bench-logs", lock_prefix="sched_bench",
                      env={"SCHEDULER_TICK_SECONDS": args.tick, "SCHEDULER_LOG_LEVEL": "WARNING"})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench = Bench(start_cluster(procs), random.Random(args.seed))
        started = time.monotonic()
        for number in range(1, args.runs + 1):
            bench.run_once()
            print(f"run {number}: fan-in {bench.fan_in[-1]:.3f} s", flush=True)
        print()
        print(f"{BRANCHES}-node fan-out/fan-in, {args.runs} runs, tick {args.tick} s, "
              f"{time.monotonic() - started:.0f} s")
        print(line("fan-in (executor clock)", bench.fan_in))
        print(line("fan-in (database: end -> claim)", bench.fan_in_db))
        print(line("fan-out (executor clock)", bench.fan_out))
        print(line("fan-out (database: end -> claim)", bench.fan_out_db))
        return 0 if percentile(bench.fan_in, 0.99) <= 0.5 else 1
    except Exception:
        print("\n" + procs.tails(20), file=sys.stderr)
        raise
    finally:
        procs.close()


if __name__ == "__main__":
    raise SystemExit(main())
