"""``manage.py`` with every scheduler tick recorded: the bench's scheduler node for workload 3 (scale).

    python -m bench.tick_probe TICKS_FILE runscheduler --instance-id bench-1 ...

The same command, settings and engine; only ``SchedulerNode.tick`` is wrapped, to append one line per tick
to TICKS_FILE: ``<end, epoch s> <wall s> <loop-thread CPU s> <found work: 0/1>``. The node's Prometheus
histogram cannot give these: its smallest bucket is 5 ms (ticks take ~2-20 ms, so no median) and it has no
CPU time, the one figure a shared machine's load does not inflate.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")


def record_ticks(path: str) -> None:
    """Wraps ``SchedulerNode.tick`` (the class attribute, so the command's node is covered)."""
    from scheduling.engine import SchedulerNode

    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    tick = SchedulerNode.tick

    def recorded_tick(self: SchedulerNode, now) -> bool:
        wall, cpu = time.perf_counter(), time.thread_time()
        work = False
        try:
            work = tick(self, now)
            return work
        finally:
            line = f"{time.time():.6f} {time.perf_counter() - wall:.6f} {time.thread_time() - cpu:.6f} {int(work)}\n"
            os.write(out, line.encode())  # one unbuffered write (~µs): lines survive a SIGKILL at close

    SchedulerNode.tick = recorded_tick


def main() -> None:
    import django
    from django.core.management import execute_from_command_line

    ticks_file, *command = sys.argv[1:]
    django.setup()
    record_ticks(ticks_file)
    execute_from_command_line(["manage.py", *command])


if __name__ == "__main__":
    main()
