"""APScheduler 3.x as the bench's peer: BackgroundScheduler + SQLAlchemyJobStore on MariaDB.

    python -m bench.aps_child --db mysql+mysqldb://root@127.0.0.1/bench_apscheduler \
        --mode burst --jobs 1000 --at EPOCH --seconds 20 --out result.json
    BENCH_STUB_URL=http://127.0.0.1:PORT python -m bench.aps_child ... --mode scale --busy 10 --idle 100000 --setup-only

``--setup-only`` writes the jobs (bulk INSERTs of pickled jobs, like our bench's bulk ORM inserts) and
exits, so that a later run measures only what loading costs APScheduler. A run starts the scheduler, lets
it work for ``--seconds``, and writes JSON: when the first ``_process_jobs`` pass finished (epoch), the
duration of every pass (its "tick"), and the process RSS.

Each fire does the same work as ours: one HTTP POST to the stub. The executor below passes the fire's
scheduled time to the job (APScheduler 3 does not hand it to the function), so the stub can measure
lateness and count duplicates per (job, scheduled time).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import threading
import time
from datetime import UTC, datetime

import psutil
import requests
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import create_engine

# From the environment: the job function is imported by reference as bench.aps_child:fire, a module other
# than the __main__ that parsed the arguments.
STUB_URL = os.environ.get("BENCH_STUB_URL", "")
WORKERS = 16  # same as our SCHEDULER_DISPATCH_WORKERS default
_local = threading.local()


def fire(job_id: str, scheduled: float = 0.0) -> None:
    """The work per fire: one POST to the stub, on a pooled per-thread session."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    session.post(f"{STUB_URL}/fire", json={"system": "apscheduler", "job": job_id, "scheduled": scheduled},
                 timeout=10)


class FireExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, calling each job with the scheduled time of the run it executes."""

    def _do_submit_job(self, job, run_times):
        def run():
            for run_time in run_times:
                job.func(*job.args, scheduled=run_time.timestamp())

        future = self._pool.submit(run)
        future.add_done_callback(lambda f: self._run_job_success(job.id, []))


def make_scheduler(engine) -> tuple[BackgroundScheduler, SQLAlchemyJobStore]:
    store = SQLAlchemyJobStore(engine=engine)
    scheduler = BackgroundScheduler(
        jobstores={"default": store}, executors={"default": FireExecutor(WORKERS)},
        job_defaults={"coalesce": True, "misfire_grace_time": 5, "max_instances": 3}, timezone=UTC,
    )
    return scheduler, store


def jobs_for(args) -> list[tuple[str, object]]:
    if args.mode == "burst":
        at = datetime.fromtimestamp(args.at, UTC)
        return [(f"burst-{i}", DateTrigger(run_date=at, timezone=UTC)) for i in range(args.jobs)]
    if args.mode == "sustained":
        return [(f"sustained-{i}", CronTrigger(second="*", timezone=UTC)) for i in range(args.jobs)]
    busy = [(f"busy-{i}", CronTrigger(second="*", timezone=UTC)) for i in range(args.busy)]
    idle = [(f"idle-{i}", CronTrigger(hour=(i // 60) % 24, minute=i % 60, second=0, timezone=UTC))
            for i in range(args.idle)]
    return busy + idle


def write_jobs(args, scheduler: BackgroundScheduler, store: SQLAlchemyJobStore, engine) -> float:
    """Drops the job table and bulk-inserts every job; returns the seconds it took."""
    started = time.monotonic()
    store.jobs_t.drop(engine, checkfirst=True)
    store.jobs_t.create(engine)
    now = datetime.now(UTC)
    rows = []
    for job_id, trigger in jobs_for(args):
        job = Job(scheduler, id=job_id, func="bench.aps_child:fire", args=(job_id,), kwargs={}, trigger=trigger,
                  executor="default", name=job_id, misfire_grace_time=5, coalesce=True, max_instances=3,
                  next_run_time=trigger.get_next_fire_time(None, now))
        rows.append({"id": job_id, "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                     "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol)})
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(store.jobs_t.insert(), rows[start:start + 5000])
    return time.monotonic() - started


def run(args, scheduler: BackgroundScheduler) -> dict:
    ticks: list[float] = []
    first: list[float] = []
    original = scheduler._process_jobs

    def timed_process_jobs():
        began = time.perf_counter()
        try:
            return original()
        finally:
            ticks.append(time.perf_counter() - began)
            if not first:
                first.append(time.time())

    scheduler._process_jobs = timed_process_jobs  # BackgroundScheduler's loop calls this attribute
    scheduler.start()
    time.sleep(args.seconds)
    rss = psutil.Process().memory_info().rss
    scheduler.shutdown(wait=False)
    return {"first_tick_at": first[0] if first else None, "ticks": ticks, "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--mode", choices=["burst", "sustained", "scale"], required=True)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--at", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    engine = create_engine(args.db, pool_size=5, pool_recycle=3600)
    scheduler, store = make_scheduler(engine)
    if args.setup_only:
        result = {"setup_seconds": write_jobs(args, scheduler, store, engine)}
    else:
        result = run(args, scheduler)
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
