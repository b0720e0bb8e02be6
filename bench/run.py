"""The benchmark suite of issue #8: our scheduler against APScheduler 3.x and Celery beat, and raw limits.

    make bench                                  # everything, full sizes (about 40 minutes)
    .venv/bin/python -m bench.run --quick       # small sizes, a smoke test
    .venv/bin/python -m bench.run --only burst  # one workload: limits, burst, sustained, scale, failover, api,
                                                # ramp (the saturation ramp: each system's knee)

Everything runs on loopback: MariaDB 127.0.0.1:3306 (root, no password; databases ``scheduler_bench`` and
``bench_apscheduler``), Redis 127.0.0.1:6379 (database 7). Prints a table and appends it, with the date and
the git commit, to bench/RESULTS.md. Child logs go to var/bench-logs/.

Every system does the same work per fire: an HTTP POST to one stub executor (bench/stub.py), which records
the receipt time per (system, job, scheduled time). For ours, the stub answers /execute and posts the
callback to the API (served by gunicorn); a run counts as done when the callback is recorded in the
database.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from core.clock import utc_now

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

import requests  # noqa: E402

from bench import api_load, limits  # noqa: E402
from bench.ours import Ours, prepare_database, scrape_tick_metrics  # noqa: E402
from bench.peers import ApsRun, CeleryRun, create_aps_database  # noqa: E402
from tests.processes import Child, free_port, wait_for  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/scheduler_bench")
LOG_ROOT = REPO / "var" / "bench-run"  # bench/failover.py empties var/bench-logs: not there
RESULTS = REPO / "bench" / "RESULTS.md"
EVERY_SECOND = "* * * * * *"
WORKLOADS = ["limits", "burst", "sustained", "scale", "failover", "api", "ramp", "burst10k", "million"]


@dataclass(frozen=True)
class Sizes:
    burst: int = 1000
    sustained_tasks: int = 500  # cron every second each: the offered rate is this many fires per second
    sustained_warmup: float = 10
    sustained_window: float = 60
    sustained_drain: float = 15
    scale_small: int = 1000
    scale_large: int = 100_000
    scale_busy: int = 10  # every-second tasks among the idle ones, so that ticks have work
    scale_measure: float = 20
    failover_kills: int = 10
    failover_stops: int = 3
    api_rows: int = 1_000_000
    api_tasks: int = 100
    api_seconds: int = 10
    limit_seconds: float = 3
    # Workload 6, the saturation ramp: offered rates (every-second tasks), each held for ramp_window seconds.
    ramp_rates: tuple[int, ...] = (500, 1000, 1500, 2000, 3000, 4000, 5000)
    ramp_window: float = 60
    big_burst: int = 10_000  # workload 7
    million: int = 1_000_000  # workload 8: tasks (scale_busy of them every second), against scale_small
    million_api_seconds: int = 10


QUICK = Sizes(burst=100, sustained_tasks=50, sustained_warmup=2, sustained_window=5, sustained_drain=3,
              scale_small=200, scale_large=5000, scale_busy=5, scale_measure=3, failover_kills=1, failover_stops=0,
              api_rows=20_000, api_tasks=20, api_seconds=2, limit_seconds=1, ramp_rates=(50, 100),
              ramp_window=5, big_burst=500, million=20_000, million_api_seconds=2)


@dataclass
class Row:
    workload: str
    measure: str
    target: str
    ours: float | None = None
    aps: float | None = None
    celery: float | None = None
    limit: float | None = None  # the raw limit this measure is compared with (ours / limit)
    unit: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Bench:
    sizes: Sizes
    log_root: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stub_url: str = ""
    stub: Child | None = None
    limits: dict[str, float] = field(default_factory=dict)

    # -- the stub ------------------------------------------------------------------------------------

    def start_stub(self) -> None:
        port = free_port()
        self.log_root.mkdir(parents=True, exist_ok=True)
        self.stub = Child("stub", [sys.executable, "-m", "bench.stub", "--port", str(port)],
                          {**os.environ, "PYTHONPATH": str(REPO)}, self.log_root / "stub.log")
        self.stub_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get_ok(f"{self.stub_url}/health"), 20, message="the stub to answer")

    def stub_reset(self) -> None:
        requests.post(f"{self.stub_url}/reset", timeout=10)

    def stub_count(self, system: str) -> int:
        return requests.get(f"{self.stub_url}/stats", timeout=10).json()["counts"].get(system, 0)

    def stub_stats(self) -> dict:
        return requests.get(f"{self.stub_url}/stats", timeout=10).json()

    def stub_records(self, system: str) -> list[tuple[str, float, float]]:
        return [tuple(r) for r in requests.get(f"{self.stub_url}/records", params={"system": system},
                                               timeout=60).json()]

    def log_dir(self, name: str) -> Path:
        path = self.log_root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ours(self, name: str, **tunables: str) -> Ours:
        return Ours(DATABASE_URL, self.stub_url, self.log_dir(name), tunables=tunables)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        figures = (f"ours={_fmt(row.ours)} aps={_fmt(row.aps)} celery={_fmt(row.celery)}" if row.ours is not None
                   or row.limit is None else f"measured {_fmt(row.limit)}")
        print(f"  {row.workload} | {row.measure}: {figures} {row.unit} (target {row.target}) {row.note}", flush=True)


# -- measures ----------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def lateness(records: list[tuple[str, float, float]]) -> dict:
    """Receipt minus scheduled time per first receipt of each (job, scheduled); duplicates counted."""
    seen: dict[tuple[str, float], float] = {}
    duplicates = 0
    for job, scheduled, received in records:
        key = (job, round(scheduled, 3))
        if key in seen:
            duplicates += 1
            continue
        seen[key] = received - scheduled
    late = list(seen.values())
    return {"p50": percentile(late, 50), "p99": percentile(late, 99), "max": max(late, default=None),
            "fires": len(seen), "duplicates": duplicates}


def window_counts(records, start: float, end: float) -> dict:
    """Fires scheduled in [start, end): distinct received, duplicates, and receipts inside the window."""
    keys = Counter((job, round(scheduled, 3)) for job, scheduled, _ in records if start <= scheduled < end)
    received_in_window = sum(1 for _, _, received in records if start <= received < end)
    late = [received - scheduled for _, scheduled, received in records if start <= scheduled < end]
    return {"distinct": len(keys), "duplicates": sum(n - 1 for n in keys.values()),
            "received_in_window": received_in_window, "p50": percentile(late, 50), "p99": percentile(late, 99)}


def compared_systems() -> list[str]:
    """Who runs the workloads that compare systems: BENCH_SYSTEMS (e.g. ``ours`` while tuning), else all."""
    return os.environ.get("BENCH_SYSTEMS", "ours,aps,celery").split(",")


def attempt(bench: Bench, label: str, function, *args):
    """Runs one system's part of a workload; a failure is noted and the others still run."""
    try:
        return function(*args)
    except Exception as exc:
        bench.notes.append(f"{label}: FAILED: {type(exc).__name__}: {str(exc)[:400]}")
        print(f"  {label} failed: {exc!r}"[:600], flush=True)
        return None


# -- workloads -----------------------------------------------------------------------------------------

def run_limits(bench: Bench) -> None:
    print("raw limits", flush=True)
    seconds = bench.sizes.limit_seconds
    session_rate = limits.session_post_rate(f"{bench.stub_url}/fire", seconds)
    stub_rate = limits.stub_capacity(f"{bench.stub_url}/fire", seconds)
    insert_rate = limits.mariadb_insert_commit_rate(seconds)
    bench.limits.update(session=session_rate, stub=stub_rate, insert=insert_rate)
    bench.add(Row("limits", "requests.Session POST, sequential, loopback", "(PITFALLS: ~1.9k)", limit=session_rate,
                  unit="req/s"))
    bench.add(Row("limits", "stub executor alone (wrk, 32 connections)", "≫ 500", limit=stub_rate, unit="req/s",
                  met=stub_rate > 2000 if stub_rate else None))
    bench.add(Row("limits", "MariaDB single-row INSERT+COMMIT (mysqlclient)", "(PITFALLS: ~6.4k)",
                  limit=insert_rate, unit="rows/s"))


def run_burst(bench: Bench, n: int | None = None, workload: str = "1 burst") -> None:
    n = n or bench.sizes.burst
    print(f"{workload.split()[0]}. burst: {n} tasks due in the same second", flush=True)
    failed = {"p50": None, "p99": None, "fires": 0, "duplicates": 0}
    runs = {"ours": ("burst ours", _burst_ours), "aps": ("burst APScheduler", _burst_aps),
            "celery": ("burst Celery", _burst_celery)}
    results = {which: (attempt(bench, label, function, bench, n) if which in compared_systems() else None) or failed
               for which, (label, function) in runs.items()}
    p50_target = ("≤ 0.2 s", 0.2) if n <= 1000 else ("(info)", None)  # issue #21 sets only p99 for 10,000
    for key, label, (target, limit_s) in (("p50", "lateness p50", p50_target), ("p99", "lateness p99", ("≤ 1 s", 1))):
        ours = results["ours"][key]
        bench.add(Row(workload, f"{label} ({n} tasks)", target, ours=ours, aps=results["aps"][key],
                      celery=results["celery"][key], unit="s",
                      met=None if limit_s is None else ours is not None and ours <= limit_s))
    bench.add(Row(workload, "fires missing / duplicated", "0 / 0",
                  ours=n - results["ours"]["fires"], aps=n - results["aps"]["fires"],
                  celery=n - results["celery"]["fires"], unit="missing",
                  note="dup: " + "/".join(str(results[s]["duplicates"]) for s in ("ours", "aps", "celery")),
                  met=results["ours"]["fires"] == n and results["ours"]["duplicates"] == 0))


def run_big_burst(bench: Bench) -> None:
    """Workload 7 (issue #21): workload 1 at ``Sizes.big_burst`` tasks due in the same second."""
    run_burst(bench, bench.sizes.big_burst, "7 burst")


def running_ours(bench: Bench, name: str, *, scheduler: bool = True) -> tuple[Ours, Child | None]:
    """Our system on an emptied database: gunicorn, the stub registered as its executor and, if asked, one
    scheduler node that leads. The caller closes it."""
    bench.stub_reset()
    ours = bench.ours(name)
    try:
        _flush()
        ours.start_web()
        ours.register_stub()
        node = None
        if scheduler:
            node = ours.start_scheduler()
            ours.wait_leader()
        return ours, node
    except BaseException:
        ours.close()
        raise


def _burst_ours(bench: Bench, n: int) -> dict:
    from tasks.choices import ScheduleType

    ours, _ = running_ours(bench, "burst-ours")
    try:
        at = datetime.fromtimestamp(math.ceil(time.time()) + 3 + _setup_allowance(n), UTC)
        ours.create_tasks({"name": f"burst-{i}", "schedule_type": ScheduleType.DATE, "run_at": at}
                          for i in range(n))
        wait_for(lambda: bench.stub_count("ours") >= n or time.time() > at.timestamp() + 60, 90, interval=0.2)
        return lateness(bench.stub_records("ours"))
    finally:
        ours.close()


def _setup_allowance(n: int) -> int:
    """Seconds more before a burst's due time, so that writing its ``n`` tasks or jobs (or a beat loading
    them) is over before it: 1 s per 2,000 past the first 1,000."""
    return max(0, n - 1000) // 2000


def _burst_aps(bench: Bench, n: int) -> dict:
    bench.stub_reset()
    aps = ApsRun(bench.stub_url, bench.log_dir("burst-aps"))
    at = math.ceil(time.time()) + 10 + _setup_allowance(n)
    aps.setup("burst", jobs=n, at=at)
    aps.run("burst", max(5.0, at - time.time()) + 10, jobs=n, at=at)
    return lateness(bench.stub_records("apscheduler"))


def _burst_celery(bench: Bench, n: int) -> dict:
    bench.stub_reset()
    celery = CeleryRun(bench.stub_url, bench.log_dir("burst-celery"))
    try:
        celery.start_worker("burst")
        at = math.ceil(time.time()) + 6 + _setup_allowance(n)
        celery.start_beat("burst", jobs=n, at=at)
        wait_for(lambda: bench.stub_count("celery") >= n or time.time() > at + 30, 60, interval=0.2)
        return lateness(bench.stub_records("celery"))
    finally:
        celery.close()


def run_sustained(bench: Bench) -> None:
    s = bench.sizes
    n = s.sustained_tasks
    print(f"2. sustained: {n} tasks every second for {s.sustained_window:g} s (offered {n} fires/s)", flush=True)
    failed = {"rate": None, "lost": None, "duplicates": None, "p99": None}
    window = s.sustained_window
    ours = attempt(bench, "sustained ours", _sustained_ours, bench, n, window) or failed
    aps, celery = ((attempt(bench, f"sustained {label}", _sustained_peer, bench, which, n, window)
                    if which in compared_systems() else None) or failed
                   for which, label in (("aps", "APScheduler"), ("celery", "Celery")))
    rate_row = Row("2 sustained", f"end-to-end executions/s (offered {n}/s)", "≥ 500/s", ours=ours["rate"],
                   aps=aps["rate"], celery=celery["rate"], limit=bench.limits.get("session"), unit="/s",
                   met=ours["rate"] is not None and ours["rate"] >= 500 and ours["lost"] == 0
                   and ours["duplicates"] == 0)
    if n < 500:
        rate_row.note = f"(offered only {n}/s: target not testable at this size)"
        rate_row.met = None
    bench.add(rate_row)
    bench.add(Row("2 sustained", "fires lost / duplicated in the window", "0 / 0", ours=ours["lost"],
                  aps=aps["lost"], celery=celery["lost"], unit="lost",
                  note=f"dup: {ours['duplicates']}/{aps['duplicates']}/{celery['duplicates']}",
                  met=ours["lost"] == 0 and ours["duplicates"] == 0 if ours["lost"] is not None else None))
    bench.add(Row("2 sustained", "lateness p99 in the window", "(info)", ours=ours["p99"], aps=aps["p99"],
                  celery=celery["p99"], unit="s"))
    if ours.get("note"):
        bench.notes.append(ours["note"])


def lateness_by_slice(records, start: float, end: float, slices: int = 6) -> list[float | None]:
    """Lateness p99 of the fires scheduled in each of ``slices`` equal parts of [start, end): whether a system
    fell behind steadily, caught up after a transient, or stalled once."""
    width = (end - start) / slices
    late: list[list[float]] = [[] for _ in range(slices)]
    for _, scheduled, received in records:
        if start <= scheduled < end:
            late[min(slices - 1, int((scheduled - start) / width))].append(received - scheduled)
    return [percentile(values, 99) for values in late]


def _sustained_ours(bench: Bench, n: int, window: float) -> dict:
    """``n`` tasks firing every second, measured over ``window`` seconds after the warm-up."""
    from django.db.models import Count

    from executions.choices import ExecutionStatus
    from executions.models import TaskExecution

    s = bench.sizes
    ours, scheduler = running_ours(bench, "sustained-ours")
    try:
        ours.create_tasks({"name": f"sustained-{i}", "cron_expression": EVERY_SECOND} for i in range(n))
        start = math.ceil(time.time() + s.sustained_warmup)
        end = start + window
        name = f"sustained-ours-{n}"
        profiles = [_maybe_profile(bench, scheduler.pid, f"{name}-scheduler", start, window),
                    _maybe_profile(bench, ours.web.pid, f"{name}-web", start, window, subprocesses=True),
                    _maybe_sample_processlist(bench, f"{name}-mariadb", start, window)]
        time.sleep(max(0.0, end + s.sustained_drain - time.time()))
        for profile in profiles:
            if profile is not None:
                profile.wait()
        first, last = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        in_window = TaskExecution.objects.filter(scheduled_time__gte=first, scheduled_time__lt=last)
        by_status = dict(in_window.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        done_in_window = TaskExecution.objects.filter(status=ExecutionStatus.SUCCESS, end_time__gte=first,
                                                      end_time__lt=last).count()
        success = by_status.get(ExecutionStatus.SUCCESS, 0)
        records = bench.stub_records("ours")
        counts = window_counts(records, start, end)
        stats = bench.stub_stats()
        slices = ", ".join("–" if p99 is None else f"{p99:.2f}" for p99 in lateness_by_slice(records, start, end))
        note = (f"sustained ours: statuses of fires in the window {by_status}; stub callbacks {stats['callbacks']}"
                f"; lateness p50 {counts['p50'] or 0:.3f} s, p99 by sixth of the window [{slices}] s"
                + (f"; callback errors {stats['callback_errors'][:3]}" if stats["callback_errors"] else ""))
        print("   " + note, flush=True)
        return {"rate": done_in_window / window, "lost": n * int(window) - success,
                "duplicates": counts["duplicates"], "p99": counts["p99"], "note": note}
    finally:
        ours.close()


def _sustained_peer(bench: Bench, which: str, n: int, window: float) -> dict:
    s = bench.sizes
    bench.stub_reset()
    total = s.sustained_warmup + window + s.sustained_drain
    if which == "aps":
        aps = ApsRun(bench.stub_url, bench.log_dir("sustained-aps"))
        aps.setup("sustained", jobs=n)
        spawned, _ = aps.run("sustained", total + 2, jobs=n)
        system = "apscheduler"
    else:
        celery = CeleryRun(bench.stub_url, bench.log_dir("sustained-celery"))
        try:
            celery.start_worker("sustained")
            spawned, _ = celery.start_beat("sustained", jobs=n)
            time.sleep(total + 2)
        finally:
            celery.close()
        system = "celery"
    start = math.ceil(spawned + 2 + s.sustained_warmup)  # ~2 s of process start before the warm-up
    end = start + window
    counts = window_counts(bench.stub_records(system), start, end)
    return {"rate": counts["received_in_window"] / window, "lost": n * int(window) - counts["distinct"],
            "duplicates": counts["duplicates"], "p99": counts["p99"]}


# A step of the ramp is held when nothing was lost or duplicated and the lateness p99 stayed within this.
RAMP_P99_LIMIT_S = 1.0


def run_ramp(bench: Bench) -> None:
    """Workload 6 (issue #21): the offered rate stepped up (``Sizes.ramp_rates`` every-second tasks, each step
    the sustained workload over ``ramp_window`` seconds) for each system until a step is not held (a fire lost
    or duplicated, or lateness p99 over RAMP_P99_LIMIT_S). A system's knee is the highest rate it held."""
    s = bench.sizes
    print(f"6. ramp: offered {', '.join(map(str, s.ramp_rates))} fires/s, {s.ramp_window:g} s each, until a "
          f"system loses a fire or its lateness p99 passes {RAMP_P99_LIMIT_S:g} s", flush=True)
    measured: dict[str, dict[int, dict]] = {"ours": {}, "aps": {}, "celery": {}}
    knees: dict[str, int | None] = {}
    for which in measured:
        knees[which] = None
        if which not in compared_systems():
            continue
        for rate in s.ramp_rates:
            if which == "ours":
                step = attempt(bench, f"ramp ours {rate}/s", _sustained_ours, bench, rate, s.ramp_window)
            else:
                step = attempt(bench, f"ramp {which} {rate}/s", _sustained_peer, bench, which, rate, s.ramp_window)
            measured[which][rate] = step or {}
            held = bool(step) and step["lost"] == 0 and step["duplicates"] == 0 and step["p99"] is not None \
                and step["p99"] <= RAMP_P99_LIMIT_S
            print(f"   ramp {which} {rate}/s: {_ramp_step_note(step)} -> {'held' if held else 'NOT held'}",
                  flush=True)
            if not held:
                break
            knees[which] = rate
    for rate in s.ramp_rates:
        steps = {which: measured[which].get(rate) for which in measured}
        if not any(steps.values()):
            continue
        bench.add(Row("6 ramp", f"offered {rate}/s: end-to-end executions/s", "(info)",
                      ours=(steps["ours"] or {}).get("rate"), aps=(steps["aps"] or {}).get("rate"),
                      celery=(steps["celery"] or {}).get("rate"), unit="/s",
                      note="; ".join(f"{which}: {_ramp_step_note(step)}" for which, step in steps.items()
                                     if step is not None)))
    ours, peers = knees["ours"], (knees["aps"], knees["celery"])
    bench.add(Row("6 ramp", f"knee: highest offered rate held (0 lost, p99 ≤ {RAMP_P99_LIMIT_S:g} s)",
                  "≥ 3,000/s and ≥ 5× each peer", ours=ours, aps=knees["aps"], celery=knees["celery"], unit="/s",
                  note=("(none held: not even the first step)" if ours is None else
                        "(the last rate offered was held: the knee is above it)" if ours == s.ramp_rates[-1] else ""),
                  met=ours is not None and ours >= 3000 and all(peer is None or ours >= 5 * peer for peer in peers)))


def _ramp_step_note(step: dict | None) -> str:
    if not step:
        return "failed"
    p99 = step.get("p99")
    return (f"{_fmt(step.get('rate'))}/s, lost {step.get('lost')}, dup {step.get('duplicates')}, p99 "
            f"{_fmt(p99)} s" if p99 is not None else f"{_fmt(step.get('rate'))}/s, lost {step.get('lost')}")


SCALE_ROUNDS = 2  # per size, for ours: enough for two rounds that disagree to show noise


def run_scale(bench: Bench) -> None:
    """Workload 3. Ours runs the sizes alternately (small, large, small, large): a change in the shared
    machine's load during the run then shows as rounds that disagree, instead of as a size effect.

    The target is on the mean wall time of a tick: the median hides a cost paid once a second (a tick that
    stages or dispatches the every-second tasks' runs is one in five), and the scheduler's CPU time misses
    what the database spends on its queries."""
    s = bench.sizes
    systems = compared_systems()
    print(f"3. scale: {s.scale_large} vs {s.scale_small} active tasks ({s.scale_busy} firing every second)",
          flush=True)
    large, small = s.scale_large, s.scale_small
    rounds: dict[int, list[dict]] = {small: [], large: []}
    for number in range(1, SCALE_ROUNDS + 1):
        for size in (small, large) if "ours" in systems else ():
            measured = attempt(bench, f"scale ours {size} (round {number})", _scale_one, bench, "ours", size)
            if measured:
                rounds[size].append(measured)
    result = {"ours": {size: _scale_pooled(rounds[size]) for size in (small, large)}}
    for which in ("aps", "celery"):
        result[which] = {size: attempt(bench, f"scale {which} {size}", _scale_one, bench, which, size) or {}
                         if which in systems else {} for size in (small, large)}

    def pick(which, size, key):
        return result[which][size].get(key)

    def ratio(which, key="tick"):
        big, little = pick(which, large, key), pick(which, small, key)
        return big / little if big and little else None

    bench.add(Row("3 scale", f"load time, start -> first tick/leadership ({large} tasks)", "≤ 10 s",
                  ours=pick("ours", large, "load"), aps=pick("aps", large, "load"),
                  celery=pick("celery", large, "load"), unit="s",
                  met=(pick("ours", large, "load") or 99) <= 10))
    bench.add(Row("3 scale", f"scheduler RSS ({large} tasks)", "≤ 300 MB",
                  ours=_mb(pick("ours", large, "rss")), aps=_mb(pick("aps", large, "rss")),
                  celery=_mb(pick("celery", large, "rss")), unit="MB",
                  met=(_mb(pick("ours", large, "rss")) or 1e9) <= 300))
    for size in (small, large):
        bench.add(Row("3 scale", f"mean tick cost ({size} tasks)", "(info)", ours=_ms(pick("ours", size, "tick")),
                      aps=_ms(pick("aps", size, "tick")), celery=_ms(pick("celery", size, "tick")), unit="ms",
                      note=_scale_tick_note(result["ours"][size])))
    bench.add(Row("3 scale", f"tick cost {large} / {small} tasks (mean wall time)", "≤ 1.5×", ours=ratio("ours"),
                  aps=ratio("aps"), celery=ratio("celery"), unit="×", met=(ratio("ours") or 99) <= 1.5))
    for key, label in (("wall_median", "median wall time"), ("wall_p90", "p90 wall time"),
                       ("cpu_mean", "loop-thread CPU, mean: the database's share is not in it"),
                       ("process_cpu_per_tick", "process CPU (all threads, /proc) per tick")):
        bench.add(Row("3 scale", f"ours: tick cost {large} / {small} tasks, {label}", "(info)",
                      ours=ratio("ours", key), unit="×",
                      note=f"({_fmt(_ms(pick('ours', small, key)))} -> {_fmt(_ms(pick('ours', large, key)))} ms)"))
    due_small, due_large = pick("ours", small, "due_query"), pick("ours", large, "due_query")
    bench.add(Row("3 scale", f"ours: due-task query median, {small} -> {large} tasks", "(info)",
                  ours=due_large / due_small if due_small and due_large else None, unit="×",
                  note=f"({_fmt(_ms(due_small))} -> {_fmt(_ms(due_large))} ms)"))
    for size in (small, large):
        bench.notes.append(f"scale ours, {size} tasks, per round: " + "; ".join(
            _scale_round_note(measured) for measured in rounds[size]))
    setup = {w: pick(w, large, "setup") for w in ("ours", "aps", "celery")}
    bench.notes.append(f"scale: writing {large} tasks/jobs before the run (not in load time): "
                       + ", ".join(f"{w} {v:.1f} s" for w, v in setup.items() if v is not None)
                       + "; celery beat builds its schedule from the config at start-up (part of its load time). "
                       f"Ours: {SCALE_ROUNDS} rounds per size, alternated; the tick figures are over all rounds' "
                       "ticks; its idle crons never fall due inside the window (the peers' spread over the whole "
                       "day: ~1 fire/s at the large size)")


def run_million(bench: Bench) -> None:
    """Workload 8 (issue #21): ``Sizes.million`` tasks, ``scale_busy`` of them every second, the rest idle
    crons; against ``scale_small`` tasks in the same run for the tick. While the million-task node leads,
    ``bench.million.measure_live`` changes a task and measures the task lists. The peers run workload 3's
    round at the same size."""
    from bench.million import measure_live

    s = bench.sizes
    systems = compared_systems()
    print(f"8. a million: {s.million} tasks ({s.scale_busy} every second) vs {s.scale_small}", flush=True)
    small = attempt(bench, f"million: ours {s.scale_small}", _scale_one, bench, "ours", s.scale_small) or {}

    def live(ours, idle_ids):
        return measure_live(bench, ours, idle_ids, s.million_api_seconds)

    with buffer_pool_of_at_least(MILLION_BUFFER_POOL) as pool_before:
        if pool_before < MILLION_BUFFER_POOL >> 20:
            bench.notes.append(f"million: MariaDB's InnoDB buffer pool was raised from {pool_before} MB to "
                               f"{MILLION_BUFFER_POOL >> 20} MB for the million-task round (and restored after)")
        large = attempt(bench, f"million: ours {s.million}", _scale_ours, bench, s.scale_busy,
                        s.million - s.scale_busy, live) or {}
        peers, peers_small = {"celery": {}}, {"celery": {}}
        run = "aps" in systems
        peers_small["aps"] = (attempt(bench, f"million: aps {s.scale_small}", _scale_one, bench, "aps",
                                      s.scale_small) or {}) if run else {}
        peers["aps"] = (attempt(bench, f"million: aps {s.million}", _scale_one, bench, "aps", s.million)
                        or {}) if run else {}
    if "celery" in systems:
        bench.notes.append("million: Celery beat is not run at this size: it builds its whole schedule in memory "
                           "at start-up (workload 3: 1.3 GB and 23 s at 100,000 entries, growing with them), "
                           "~13 GB here on a 24 GB machine that also holds the database")
    tick_small, tick_large = (_scale_pooled([small]) if small else {}), (_scale_pooled([large]) if large else {})
    ratio = (tick_large["tick"] / tick_small["tick"]) if tick_small and tick_large else None
    n = f"{s.million:,}"
    bench.add(Row("8 million", f"load time, start -> first tick/leadership ({n} tasks)", "≤ 10 s",
                  ours=large.get("load"), aps=peers["aps"].get("load"), celery=peers["celery"].get("load"),
                  unit="s", met=(large.get("load") or 99) <= 10))
    bench.add(Row("8 million", f"scheduler RSS ({n} tasks)", "≤ 500 MB", ours=_mb(large.get("rss")),
                  aps=_mb(peers["aps"].get("rss")), celery=_mb(peers["celery"].get("rss")), unit="MB",
                  met=(_mb(large.get("rss")) or 1e9) <= 500))
    peer_ratio = {which: peers[which]["tick"] / peers_small[which]["tick"]
                  if peers[which].get("tick") and peers_small[which].get("tick") else None for which in peers}
    bench.add(Row("8 million", f"tick cost {n} / {s.scale_small:,} tasks (mean wall time)", "≤ 1.5×", ours=ratio,
                  aps=peer_ratio["aps"], celery=peer_ratio["celery"], unit="×", met=(ratio or 99) <= 1.5,
                  note=f"(ours {_fmt(_ms(tick_small.get('tick')))} -> {_fmt(_ms(tick_large.get('tick')))} ms; "
                       "each peer against its own round at the small size)"))
    bench.add(Row("8 million", "a task change applies: API answer -> its first dispatch", "≤ 2 s",
                  ours=large.get("change_applied"), unit="s", met=(large.get("change_applied") or 99) <= 2,
                  note=f"(its first fire time came {_fmt(large.get('first_fire_lateness'))} s before the dispatch "
                       "arrived; ours only)"))
    for key, label in (("api_list", "API task list, page 1"), ("api_list_active_page_50",
                                                               "API task list, status=active, page 50"),
                       ("console_list", "console task list, page 1"),
                       ("console_list_page_50", "console task list, page 50")):
        result = large.get(key) or {}
        p99 = result.get("p99_ms")
        bench.add(Row("8 million", f"{label} p99 ({n} tasks)", "≤ 200 ms", ours=p99, unit="ms",
                      met=p99 is not None and p99 <= 200 and not result.get("errors") and not result.get("timeouts"),
                      note=f"p50 {_fmt(result.get('p50_ms'))} ms, {_fmt(result.get('rps'))} req/s, gunicorn CPU "
                           f"{_fmt(result.get('cpu_ms'))} ms/request"
                           + (f", {result['errors']} non-2xx" if result.get("errors") else "") + "; ours only"))
    if large:
        bench.notes.append(f"million: writing {n} tasks (and their executor links) took {large['setup']:.0f} s "
                           f"before the run (not in load time); load average {large['loadavg']:.2f}")


# A million tasks with their indexes are ~1 GB of InnoDB pages. MariaDB's default buffer pool (128 MB) holds an
# eighth of it: inserting them then took minutes of random reads, and no production server holding a million
# tasks runs that way. Workload 8 raises the pool to this for its run (SET GLOBAL, online) and restores it.
MILLION_BUFFER_POOL = 2 * 1024 ** 3


@contextlib.contextmanager
def buffer_pool_of_at_least(size: int):
    """Yields the pool's size before (MB), restored on the way out."""
    from django.db import connection

    def pool(set_to: int | None = None) -> int:
        with connection.cursor() as cursor:
            if set_to is not None:
                cursor.execute(f"SET GLOBAL innodb_buffer_pool_size = {int(set_to)}")
            cursor.execute("SELECT @@innodb_buffer_pool_size")
            return int(cursor.fetchone()[0])

    before = pool()
    if before < size:
        pool(size)
    try:
        yield before >> 20
    finally:
        if before < size:
            pool(before)


def _scale_pooled(rounds: list[dict]) -> dict:
    """One size's rounds as one: medians over all their ticks; load time and RSS the worst round's."""
    from bench.scale import summarize

    if not rounds:
        return {}
    ticks = [tick for measured in rounds for tick in measured["ticks"]]
    pooled = summarize(ticks, sum(measured["process_cpu"] for measured in rounds))
    pooled["duty"] = sum(tick.wall for tick in ticks) / sum(measured["window"] for measured in rounds)
    worst = {key: max(measured[key] for measured in rounds) for key in ("load", "rss", "setup")}
    return {**pooled, **worst, "tick": pooled["wall_mean"],
            "due_query": statistics.median(measured["due_query"] for measured in rounds)}


def _scale_tick_note(pooled: dict) -> str:
    if not pooled:
        return ""
    return (f"(ours: {pooled['ticks']} ticks over the rounds, {pooled['busy_ticks']} found work; "
            f"{_fmt(pooled['duty'] * 100)}% of the time in a tick)")


def _scale_round_note(measured: dict) -> str:
    summary = measured["summary"]
    return (f"{summary['ticks']} ticks, wall mean {_fmt(_ms(summary['wall_mean']))} / median "
            f"{_fmt(_ms(summary['wall_median']))} / p90 {_fmt(_ms(summary['wall_p90']))} ms, loop CPU mean "
            f"{_fmt(_ms(summary['cpu_mean']))} ms, load average {measured['loadavg']:.2f} "
            f"(the node's own histogram counted {measured['histogram_ticks']:.0f} ticks)")


def _scale_one(bench: Bench, which: str, size: int) -> dict:
    s = bench.sizes
    busy, idle = s.scale_busy, size - s.scale_busy
    bench.stub_reset()
    if which == "ours":
        return _scale_ours(bench, busy, idle)
    if which == "aps":
        aps = ApsRun(bench.stub_url, bench.log_dir(f"scale-aps-{size}"))
        setup = aps.setup("scale", busy=busy, idle=idle)
        spawned, out = aps.run("scale", s.scale_measure + 3, busy=busy, idle=idle)
        ticks = out["ticks"][1:]  # the first pass handles the start-up; the rest are steady ticks
        return {"load": (out["first_tick_at"] - spawned) if out["first_tick_at"] else None,
                "rss": out["rss"], "tick": statistics.mean(ticks) if ticks else None, "setup": setup}
    celery = CeleryRun(bench.stub_url, bench.log_dir(f"scale-celery-{size}"))
    try:
        celery.start_worker("scale")
        spawned, beat = celery.start_beat("scale", busy=busy, idle=idle)
        first = wait_for(lambda: celery.beat_metrics("scale") or (not beat.alive and _dead(beat)), 300,
                         interval=0.2, message="celery beat's first tick")
        time.sleep(s.scale_measure + 1.5)
        metrics = celery.beat_metrics("scale") or first
        ticks = metrics["ticks"][1:]
        return {"load": metrics["first_tick_at"] - spawned, "rss": metrics["rss"],
                "tick": statistics.mean(ticks) if ticks else None, "setup": 0.0}
    finally:
        celery.close()


def _scale_ours(bench: Bench, busy: int, idle: int, live=None) -> dict:
    """One size, one round: the node runs under bench/tick_probe.py, which logs every tick's wall and
    loop-thread CPU; the window's process CPU comes from /proc. ``live(ours, idle_task_ids)``, if given, then
    measures more on the running system (its figures are added)."""
    import psutil

    from bench.scale import analyze_tables, idle_cron, in_window, start_probed_scheduler, summarize

    s = bench.sizes
    ours, _ = running_ours(bench, f"scale-ours-{busy + idle}", scheduler=False)
    try:
        began = time.monotonic()
        hour = datetime.now(UTC).hour
        task_ids = ours.create_tasks(itertools.chain(
            ({"name": f"busy-{i}", "cron_expression": EVERY_SECOND} for i in range(busy)),
            ({"name": f"idle-{i}", "cron_expression": idle_cron(i, hour)} for i in range(idle))))
        if os.environ.get("BENCH_SCALE_ANALYZE"):  # an experiment: the cost of a plan chosen on stale statistics
            analyze_tables()
        setup = time.monotonic() - began
        spawned = time.time()
        port = free_port()
        scheduler = start_probed_scheduler(ours, SCHEDULER_METRICS_PORT=str(port))
        leader_since = ours.wait_leader()
        wait_for(lambda: scheduler.ticks() or (not scheduler.alive and _dead(scheduler)), 30, interval=0.05,
                 message="the first tick")
        first_tick = scheduler.ticks()[0].ended
        time.sleep(1.0)
        start, cpu_start, counted_start = time.time(), scheduler.cpu_seconds(), _tick_count(port)
        time.sleep(s.scale_measure)
        end, cpu_end, counted_end = time.time(), scheduler.cpu_seconds(), _tick_count(port)
        rss = psutil.Process(scheduler.pid).memory_info().rss
        ticks = in_window(scheduler.ticks(), start, end)
        load = min(leader_since.timestamp(), first_tick) - spawned
        extra = live(ours, task_ids[busy:]) if live is not None else {}
        return {**extra, "load": load, "rss": rss, "setup": setup, "ticks": ticks, "process_cpu": cpu_end - cpu_start,
                "window": end - start,
                "summary": summarize(ticks, cpu_end - cpu_start), "loadavg": os.getloadavg()[0],
                "histogram_ticks": counted_end - counted_start,
                "due_query": due_query_seconds()}
    finally:
        ours.close()


def due_query_seconds(repeats: int = 100) -> float:
    """Median time of the engine's own due-task read (``scheduling.firing.due_tasks``), run here against the
    same rows. Under the (status, next_run_time) index it reads the due rows only (EXPLAIN: a range, ~10
    rows, at both sizes); a change of plan would show here first."""

    from scheduler_project.config import tunable
    from scheduling.firing import due_tasks

    now = utc_now()
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        due_tasks(now, tunable("FIRE_BATCH_SIZE"))
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def _tick_count(port: int) -> float:
    """Ticks the node's histogram has counted (a check that the probe logged every one)."""
    try:
        return scrape_tick_metrics(port)[1]
    except requests.RequestException:
        return 0.0


def run_failover(bench: Bench) -> None:
    s = bench.sizes
    print(f"4. failover: bench/failover.py --trials {s.failover_kills} --stop-trials {s.failover_stops}",
          flush=True)
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "PYTHONPATH": str(REPO)}
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(REPO / "bench" / "failover.py"), "--trials", str(s.failover_kills),
         "--stop-trials", str(s.failover_stops)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=1800, check=False)
    (bench.log_dir("failover") / "failover.out").write_text(result.stdout + "\n" + result.stderr)
    medians = _failover_medians(result.stdout)
    if result.returncode != 0 and not medians:
        bench.notes.append(f"failover: bench/failover.py exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    for kind, target, limit_s in (("SIGKILL", "≤ 2 s (median)", 2.0), ("SIGSTOP", "≤ 20 s (median)", 20.0)):
        value = medians.get(kind)
        trials = s.failover_kills if kind == "SIGKILL" else s.failover_stops
        bench.add(Row("4 failover", f"{kind} leader -> first dispatch by the new one ({trials} trials)", target,
                      ours=value, unit="s", met=(value is not None and value <= limit_s) if trials else None,
                      note="ours only (peers have no leader election)"))


def _failover_medians(output: str) -> dict[str, float]:
    medians: dict[str, float] = {}
    kind = None
    for line in output.splitlines():
        if line.startswith(("SIGKILL", "SIGSTOP")):
            kind = line.split()[0]
        elif kind and line.strip().startswith("signal -> first dispatch"):
            medians[kind] = float(line.split()[-3])
    return medians


def run_api(bench: Bench) -> None:
    s = bench.sizes
    print(f"5. API over {s.api_rows} execution rows (gunicorn, wrk)", flush=True)
    ours, _ = running_ours(bench, "api", scheduler=False)
    try:
        if ours.create_api_key() is None:
            bench.notes.append("api: `manage.py create_api_key` is not available yet: reads sent without a key")
        began = time.monotonic()
        task_ids = api_load.populate(ours, tasks=s.api_tasks, rows=s.api_rows)
        inserted = time.monotonic() - began
        settled = api_load.settle()
        bench.notes.append(f"api: inserted {s.api_rows} execution rows in {inserted:.1f} s (multi-row INSERTs, "
                           f"{s.api_tasks} tasks over 90 days); InnoDB wrote them back in a further {settled:.0f} s "
                           f"before measuring; each endpoint warmed up {api_load.WARMUP_SECONDS} s (discarded)")
        for name, path, target in api_load.endpoints(task_ids):
            result = api_load.measure(ours.web, path, ours.auth_headers(), s.api_seconds)
            bench.add(Row("5 api", f"{name} p99", f"≤ {target} ms", ours=result.get("p99_ms"), unit="ms",
                          met=result.get("p99_ms") is not None and result["p99_ms"] <= target
                          and not result.get("errors") and not result.get("timeouts"),
                          note=f"p50 {_fmt(result.get('p50_ms'))} ms, {_fmt(result.get('rps'))} req/s, "
                               f"gunicorn CPU {_fmt(result.get('cpu_ms'))} ms/request"
                               + (f", {result['errors']} non-2xx" if result.get("errors") else "")
                               + (f", {result['timeouts']} over {api_load.WRK_TIMEOUT} s" if result.get("timeouts")
                                  else "")
                               + ("; none completed within wrk's timeout" if result.get("p99_ms") is None else "")
                               + "; ours only"))
    finally:
        ours.close()


# -- output ------------------------------------------------------------------------------------------

def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 100 and float(value).is_integer()):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def table(rows: list[Row]) -> str:
    columns = ["workload", "measure", "target", "ours", "APScheduler", "Celery", "ours/APS", "ours/Celery",
               "ours/limit", "met"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        unit = f" {row.unit}" if row.unit else ""
        ours = _fmt(row.ours) + unit if row.ours is not None else ("–" if row.limit is None else "")
        limit_col = _ratio(row.ours, row.limit) if row.ours is not None else (_fmt(row.limit) + unit
                                                                               if row.limit is not None else "–")
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        measure = row.measure + (f" {row.note}" if row.note else "")
        cells = [row.workload, measure, row.target, ours, _fmt(row.aps), _fmt(row.celery),
                 _ratio(row.ours, row.aps), _ratio(row.ours, row.celery), limit_col, met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,  # noqa: S603, S607
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain") else "")


def report(bench: Bench, args, started: float) -> str:
    import psutil

    load = os.getloadavg()
    z = bench.sizes
    header = (f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}"
              f"{' (--quick)' if args.quick else ''}{' --only ' + ','.join(args.only) if args.only else ''}")
    lines = [header, "",
             f"Machine: {psutil.cpu_count()} CPUs, load average at the end {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} "
             f"(shared with other work: figures are noisy); bench took {time.monotonic() - started:.0f} s. "
             f"Sizes: burst {z.burst}, sustained {z.sustained_tasks} fires/s over {z.sustained_window:g} s, scale "
             f"{z.scale_large} vs {z.scale_small} tasks, API {z.api_rows} rows.", "",
             table(bench.rows), ""]
    lines += [f"- {note}" for note in bench.notes]
    lines.append("- Ratios are ours / peer and ours / limit (lateness, load, RSS, tick: lower is better; "
                 "throughput: higher is better). APScheduler: BackgroundScheduler, SQLAlchemyJobStore on MariaDB, "
                 "16 pool threads, misfire_grace_time 5 s. Celery: beat (PersistentScheduler) + one worker, "
                 "threads pool of 16, Redis broker. Ours: README defaults (tick 0.2 s, 16 dispatch workers, batch "
                 "500), gunicorn 3 workers x 4 threads for the API and callbacks.")
    return "\n".join(lines) + "\n"


def _flush() -> None:
    from bench.ours import flush

    flush()


def _mb(value: float | None) -> float | None:
    return value / 1024 / 1024 if value is not None else None


def _ms(value: float | None) -> float | None:
    return value * 1000 if value is not None else None


def _dead(child: Child) -> bool:
    raise AssertionError(f"{child.name} exited with {child.returncode}:\n{child.tail()}")


def _get_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _maybe_profile(bench: Bench, pid: int, name: str, start: float, seconds: float, *, subprocesses: bool = False):
    """With --profile, py-spy records the process (and, with ``subprocesses``, its children: gunicorn's
    workers) during the window (raw collapsed stacks: ``python -m bench.profile_summary``)."""
    if not getattr(bench, "profile", False):
        return None
    time.sleep(max(0.0, start - time.time()))
    out = bench.log_dir("profiles") / f"{name}.txt"
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),  # noqa: S603
                             "--format", "raw", "--output", str(out), "--nonblocking", "--threads",
                             *(["--subprocesses"] if subprocesses else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _maybe_sample_processlist(bench: Bench, name: str, start: float, seconds: float):
    """With --profile, MariaDB's processlist every 0.2 s of the window: what the server's threads were doing
    (state and statement, counted over the samples), written to profiles/<name>.txt. Returns an object with
    ``wait()``."""
    if not getattr(bench, "profile", False):
        return None
    import threading

    import MySQLdb

    out = bench.log_dir("profiles") / f"{name}.txt"

    def sample() -> None:
        connection = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="")
        seen: collections.Counter = collections.Counter()
        samples = 0
        time.sleep(max(0.0, start - time.time()))
        while time.time() < start + seconds:
            cursor = connection.cursor()
            cursor.execute("SELECT COMMAND, STATE, LEFT(INFO, 70) FROM information_schema.PROCESSLIST "
                           "WHERE COMMAND != 'Sleep' AND ID != CONNECTION_ID()")
            for command, state, info in cursor.fetchall():
                seen[(command, state or "", " ".join((info or "").split()))] += 1
            samples += 1
            time.sleep(0.2)
        connection.close()
        lines = [f"{samples} samples of MariaDB's processlist; busy threads per sample, by command/state/statement:"]
        lines += [f"{n / samples:7.2f}  {command} | {state} | {info}"
                  for (command, state, info), n in seen.most_common(40)]
        out.write_text("\n".join(lines) + "\n")

    thread = threading.Thread(target=sample, name="processlist", daemon=True)
    thread.start()
    thread.wait = lambda: thread.join(seconds + 30)
    return thread


RUNNERS = {"limits": run_limits, "burst": run_burst, "sustained": run_sustained, "scale": run_scale,
           "failover": run_failover, "api": run_api, "ramp": run_ramp, "burst10k": run_big_burst,
           "million": run_million}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the harness")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run only this workload (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the scheduler and the web workers, sample MariaDB's processlist (sustained)")
    parser.add_argument("--no-save", action="store_true", help="print the table, do not append to RESULTS.md")
    parser.add_argument("--sustained-tasks", type=int, help="override the offered rate of workload 2 (fires/s)")
    parser.add_argument("--burst-tasks", type=int, help="override the size of workload 1")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    overrides = {"sustained_tasks": args.sustained_tasks, "burst": args.burst_tasks}
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v})
    bench = Bench(sizes, LOG_ROOT)
    bench.profile = args.profile
    started = time.monotonic()
    prepare_database(DATABASE_URL)
    create_aps_database()
    bench.start_stub()
    try:
        for name in WORKLOADS:
            if args.only and name not in args.only:
                continue
            if name != "limits" and "session" not in bench.limits:
                run_limits(bench)  # every comparison with a limit needs the limits of this run
            if name == "limits" and "session" in bench.limits:
                continue
            try:
                RUNNERS[name](bench)
            except Exception as exc:  # one broken workload must not lose the others' figures
                bench.notes.append(f"{name}: FAILED: {type(exc).__name__}: {str(exc)[:500]}")
                print(f"  {name} failed: {exc!r}", flush=True)
    finally:
        if bench.stub is not None:
            bench.stub.end()
    text = report(bench, args, started)
    print("\n" + text)
    if not args.no_save:
        existed = RESULTS.exists()
        with RESULTS.open("a") as out:
            if not existed:
                out.write("# Benchmark results\n\nAppended by `make bench` (bench/run.py); newest last.\n\n")
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
