"""Celery as the bench's peer: ``celery beat`` (its default PersistentScheduler) + one worker, Redis broker.

    BENCH_MODE=burst BENCH_JOBS=1000 BENCH_AT=EPOCH BENCH_STUB_URL=... BENCH_BEAT_METRICS=path \
        celery -A bench.celery_app beat -S bench.celery_app:BenchScheduler -s var/bench/celerybeat-schedule
    celery -A bench.celery_app worker -P threads -c 16

The beat schedule is built from the environment at import, as a project's settings module would. Each
fire does the same work as ours: the worker POSTs to the stub. Beat does not tell a task which scheduled
time it stands for, so :class:`BenchScheduler` adds it (``scheduled=`` epoch) when it sends the task, and
records how long each of its ticks took and when the first one finished.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
from datetime import UTC, datetime

import requests
from celery import Celery
from celery.beat import PersistentScheduler
from celery.schedules import BaseSchedule, crontab, schedstate

STUB_URL = os.environ.get("BENCH_STUB_URL", "")
app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
app.conf.update(task_ignore_result=True, timezone="UTC", enable_utc=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True, beat_max_loop_interval=1)
_local = threading.local()


@app.task(name="bench.fire")
def fire(job: str, scheduled: float = 0.0) -> None:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    session.post(f"{STUB_URL}/fire", json={"system": "celery", "job": job, "scheduled": scheduled}, timeout=10)


class EverySecond(BaseSchedule):
    """Due at every whole second (like cron ``*/1 * * * * *``)."""

    def nominal(self, last_run_at: datetime) -> float:
        return math.floor(last_run_at.timestamp()) + 1.0

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = time.time()
        due_at = self.nominal(last_run_at)
        if now >= due_at:
            return schedstate(True, max(0.0, due_at + 1.0 - now))
        return schedstate(False, due_at - now)

    def __reduce__(self):
        return self.__class__, ()


class OnceAt(BaseSchedule):
    """Due once, at ``at`` (epoch seconds)."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def nominal(self, last_run_at: datetime) -> float:
        return self.at

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = time.time()
        if last_run_at.timestamp() >= self.at:
            return schedstate(False, 3600.0)
        if now >= self.at:
            return schedstate(True, 3600.0)
        return schedstate(False, self.at - now)

    def __reduce__(self):
        return self.__class__, (self.at,)


def entry(name: str, schedule) -> dict:
    return {"task": "bench.fire", "schedule": schedule, "args": (name,)}


def build_schedule() -> dict:
    mode = os.environ.get("BENCH_MODE", "")
    jobs = int(os.environ.get("BENCH_JOBS", "0"))
    if mode == "burst" and os.environ.get("BENCH_AT"):  # the worker imports this module without BENCH_AT
        at = float(os.environ["BENCH_AT"])
        return {f"burst-{i}": entry(f"burst-{i}", OnceAt(at)) for i in range(jobs)}
    if mode == "sustained":
        return {f"sustained-{i}": entry(f"sustained-{i}", EverySecond()) for i in range(jobs)}
    if mode == "scale":
        busy = int(os.environ.get("BENCH_BUSY", "0"))
        idle = int(os.environ.get("BENCH_IDLE", "0"))
        schedule = {f"busy-{i}": entry(f"busy-{i}", EverySecond()) for i in range(busy)}
        schedule.update({f"idle-{i}": entry(f"idle-{i}", crontab(minute=str(i % 60), hour=str((i // 60) % 24)))
                         for i in range(idle)})
        return schedule
    return {}


app.conf.beat_schedule = build_schedule()


class BenchScheduler(PersistentScheduler):
    """Celery's default scheduler, plus the fire's scheduled time on each message and tick timings."""

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        nominal = getattr(entry.schedule, "nominal", None)
        if nominal is not None:
            entry = copy.copy(entry)
            entry.kwargs = {**entry.kwargs, "scheduled": nominal(entry.last_run_at)}
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def tick(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return super().tick(*args, **kwargs)
        finally:
            self._record_tick(time.perf_counter() - began)

    def _record_tick(self, seconds: float) -> None:
        metrics = getattr(self, "_bench_metrics", None)
        if metrics is None:
            metrics = self._bench_metrics = {"first_tick_at": time.time(), "ticks": [], "written_at": 0.0}
        metrics["ticks"].append(seconds)
        path = os.environ.get("BENCH_BEAT_METRICS")
        if path and time.monotonic() - metrics["written_at"] > 1.0:
            metrics["written_at"] = time.monotonic()
            import psutil

            with open(path + ".tmp", "w") as out:
                json.dump({**metrics, "rss": psutil.Process().memory_info().rss,
                           "now": datetime.now(UTC).timestamp()}, out)
            os.replace(path + ".tmp", path)
