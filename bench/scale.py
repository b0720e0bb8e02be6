"""Workload 3 (scale), our side: what one tick costs, measured so that a shared machine's load shows.

The scheduler runs under ``bench.tick_probe`` (the same ``runscheduler``, every tick logged with its wall
and loop-thread CPU time). Over the measuring window the bench reads:

- the wall time of a tick: mean, median and p90 (the mean carries the once-a-second ticks that fire,
  stage or dispatch; the median is an idle tick);
- the loop thread's CPU per tick (``time.thread_time`` inside the tick): other processes' load does not
  inflate it, only this process's own work does;
- the whole process's CPU over the window (``/proc/<pid>/stat`` utime+stime: the loop, the dispatch
  workers' POSTs, the metrics thread) divided by the ticks in it.
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.processes import Child

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Tick:
    ended: float  # epoch seconds
    wall: float
    cpu: float  # the loop thread's CPU seconds
    work: bool


class ProbedScheduler(Child):
    """A ``runscheduler`` node whose ticks are logged to ``ticks_path`` (see bench/tick_probe.py)."""

    def __init__(self, instance_id: str, env: dict[str, str], log_path: Path, ticks_path: Path) -> None:
        self.instance_id = instance_id  # what Ours.wait_leader looks for
        self.ticks_path = ticks_path
        ticks_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bench.tick_probe", str(ticks_path), "runscheduler", "--instance-id",
                instance_id, "--host", "127.0.0.1", "--port", "0", "--skip-checks"]
        super().__init__(f"scheduler-{instance_id}", argv, env, log_path)

    def ticks(self) -> list[Tick]:
        if not self.ticks_path.exists():
            return []
        lines = self.ticks_path.read_text().splitlines()
        return [Tick(float(e), float(w), float(c), w_ == "1") for e, w, c, w_ in
                (line.split() for line in lines if line.count(" ") == 3)]

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process (all threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)


def start_probed_scheduler(ours, instance_id: str = "bench-1", **env: str) -> ProbedScheduler:
    """Like ``Ours.start_scheduler``, under the probe; ``ours.close()`` ends it with the other children."""
    procs = ours.procs
    child = ProbedScheduler(instance_id, {**procs.env, **env}, procs.log_dir / f"scheduler-{instance_id}.log",
                            procs.log_dir / f"ticks-{instance_id}.txt")
    procs.children.append(child)
    return child


def summarize(ticks: list[Tick], process_cpu: float | None = None) -> dict:
    """Medians over a window's ticks; ``process_cpu`` is the process's CPU seconds over the same window."""
    if not ticks:
        return {}
    walls = [t.wall for t in ticks]
    return {
        "ticks": len(ticks),
        "busy_ticks": sum(1 for t in ticks if t.work),
        "wall_median": statistics.median(walls),
        "wall_mean": statistics.fmean(walls),
        "wall_p90": statistics.quantiles(walls, n=10)[-1] if len(walls) > 1 else walls[0],
        "cpu_median": statistics.median(t.cpu for t in ticks),
        "cpu_mean": statistics.fmean(t.cpu for t in ticks),
        "process_cpu_per_tick": process_cpu / len(ticks) if process_cpu is not None else None,
    }


def in_window(ticks: list[Tick], start: float, end: float) -> list[Tick]:
    """Ticks that began and ended inside [start, end] (epoch seconds)."""
    return [t for t in ticks if t.ended - t.wall >= start and t.ended <= end]


def idle_cron(i: int, hour_now: int) -> str:
    """A daily cron at one of 1320 minutes of the day, none in the two hours from ``hour_now``: idle tasks
    that stay idle during the measurement. (A plain spread over all 1440 minutes fires ~70 tasks at each
    minute boundary at 100,000 tasks and ~1 at 1,000: unequal work inside a 20 s window.)"""
    return f"0 {i % 60} {(hour_now + 2 + (i // 60) % 22) % 24} * * *"


def analyze_tables() -> None:
    """Fresh optimizer statistics for the tables a tick reads. Right after a bulk insert MariaDB can still
    plan on the old ones (see bench/scale_profile.py); the bench leaves them stale unless asked
    (BENCH_SCALE_ANALYZE), as a fresh import in production would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE tasks, task_executors, executors, task_executions")
        cursor.fetchall()
