"""Running the peers (APScheduler 3.x, Celery beat + worker) as child processes for one workload."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import Child, wait_for

REPO = Path(__file__).resolve().parent.parent
APS_DATABASE = "mysql+mysqldb://root@127.0.0.1:3306/bench_apscheduler"
CELERY_REDIS = "redis://127.0.0.1:6379/7"  # the bench's own Redis database, flushed before each run
CELERY_WORKER_THREADS = "16"  # as many HTTP workers as our SCHEDULER_DISPATCH_WORKERS


def create_aps_database() -> None:
    import MySQLdb

    conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS bench_apscheduler")
    finally:
        conn.close()


class ApsRun:
    """``bench.aps_child``: writes the jobs (not timed), then runs the scheduler for ``seconds``."""

    def __init__(self, stub_url: str, log_dir: Path) -> None:
        self.stub_url = stub_url
        self.log_dir = log_dir
        self.env = {**_base_env(), "BENCH_STUB_URL": stub_url}

    def setup(self, mode: str, **counts: float) -> float:
        out = self.log_dir / f"aps-{mode}-setup.json"
        subprocess.run([sys.executable, "-m", "bench.aps_child", "--db", APS_DATABASE, "--mode", mode,  # noqa: S603
                        "--setup-only", "--out", str(out), *_flags(counts)],
                       cwd=REPO, env=self.env, check=True, timeout=900)
        return json.loads(out.read_text())["setup_seconds"]

    def run(self, mode: str, seconds: float, **counts: float) -> tuple[float, dict]:
        """Returns (wall time of the spawn, the child's JSON)."""
        out = self.log_dir / f"aps-{mode}.json"
        out.unlink(missing_ok=True)
        spawned = time.time()
        child = Child(f"aps-{mode}", [sys.executable, "-m", "bench.aps_child", "--db", APS_DATABASE, "--mode", mode,
                                      "--seconds", str(seconds), "--out", str(out), *_flags(counts)],
                      self.env, self.log_dir / f"aps-{mode}.log")
        try:
            child.popen.wait(timeout=seconds + 120)
        finally:
            child.end()
        if not out.exists():
            raise RuntimeError(f"APScheduler child wrote no result:\n{child.tail()}")
        return spawned, json.loads(out.read_text())


class CeleryRun:
    """``celery beat`` (BenchScheduler, i.e. PersistentScheduler) and one worker (threads pool)."""

    def __init__(self, stub_url: str, log_dir: Path) -> None:
        self.stub_url = stub_url
        self.log_dir = log_dir
        self.children: list[Child] = []

    def _env(self, mode: str, **settings: float) -> dict[str, str]:
        return {**_base_env(), "BENCH_STUB_URL": self.stub_url, "BENCH_REDIS_URL": CELERY_REDIS,
                "BENCH_MODE": mode, "BENCH_BEAT_METRICS": str(self.metrics_path(mode)),
                **{f"BENCH_{k.upper()}": str(v) for k, v in settings.items()}}

    def metrics_path(self, mode: str) -> Path:
        return self.log_dir / f"celery-beat-{mode}.json"

    def start_worker(self, mode: str) -> Child:
        import redis

        redis.Redis.from_url(CELERY_REDIS).flushdb()
        celery = str(Path(sys.executable).with_name("celery"))
        worker = Child("celery-worker", [celery, "-A", "bench.celery_app", "worker", "-P", "threads", "-c",
                                         CELERY_WORKER_THREADS, "-l", "info", "--without-gossip", "--without-mingle",
                                         "--without-heartbeat"],
                       self._env(mode), self.log_dir / f"celery-worker-{mode}.log")
        self.children.append(worker)
        wait_for(lambda: " ready." in worker.log_text() or (not worker.alive and _fail(worker)), 60,
                 interval=0.2, message="the celery worker to be ready")
        return worker

    def start_beat(self, mode: str, **settings: float) -> tuple[float, Child]:
        schedule = self.log_dir / f"celerybeat-schedule-{mode}"
        for old in self.log_dir.glob(schedule.name + "*"):
            old.unlink()
        self.metrics_path(mode).unlink(missing_ok=True)
        celery = str(Path(sys.executable).with_name("celery"))
        spawned = time.time()
        beat = Child("celery-beat", [celery, "-A", "bench.celery_app", "beat", "-S",
                                     "bench.celery_app:BenchScheduler", "-s", str(schedule), "-l", "warning"],
                     self._env(mode, **settings), self.log_dir / f"celery-beat-{mode}.log")
        self.children.append(beat)
        return spawned, beat

    def beat_metrics(self, mode: str) -> dict | None:
        path = self.metrics_path(mode)
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def close(self) -> None:
        for child in reversed(self.children):
            child.end()
        self.children.clear()


def _fail(child: Child) -> bool:
    raise AssertionError(f"{child.name} exited with {child.returncode}:\n{child.tail()}")


def _flags(counts: dict[str, float]) -> list[str]:
    flags = []
    for name, value in counts.items():
        flags += [f"--{name}", str(value)]
    return flags


def _base_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
