"""Where a tick's cost goes at 1,000 vs 100,000 tasks: each engine step timed in-process, with its SQL.

    .venv/bin/python -m bench.scale_profile                          # 1000 and 100000 tasks, 10 busy
    .venv/bin/python -m bench.scale_profile --sizes 200 5000 --seconds 10 --explain

Runs a real ``SchedulerNode`` (MariaDB leader lock, real queries) against ``BENCH_DATABASE_URL`` (default
``mysql://root@127.0.0.1:3306/scheduler_d_prof``, emptied first), with the HTTP to executors swapped for
an instant 200, and calls ``tick(now)`` as the loop would: once per simulated second (the every-second
tasks are due), then a few idle ticks 0.2 s apart; the idle crons never fall due. Prints per step the
median wall and loop-thread CPU (``time.thread_time``) per tick and the queries the step ran;
``--explain`` adds MariaDB's plan of each SELECT at the largest size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

DEFAULT_URL = "mysql://root@127.0.0.1:3306/scheduler_d_prof"
EVERY_SECOND = "* * * * * *"
STEPS = ("hold_leadership", "heartbeat", "fire_due", "dispatch_pending", "sweep_timeouts", "check_health",
         "purge_history")


class StepTimer:
    """Wall and thread-CPU seconds per step per tick, and the SQL each step ran (via execute_wrapper)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.sql: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.current: str | None = None

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            outer, self.current = self.current, name
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name].append(time.perf_counter() - wall)
                self.cpu[name].append(time.thread_time() - cpu)
                self.current = outer
        return timed

    def record_sql(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if self.current is not None:
                self.sql[self.current][_shape(sql)].append(time.perf_counter() - began)


def _shape(sql: str) -> str:
    """The statement with its IN lists folded, so the same query with other ids counts as one."""
    import re

    return re.sub(r"IN \((%s, )*%s\)", "IN (...)", sql)


def build_node(timer: StepTimer):
    """A leader node whose steps are timed and whose executors answer 200 at once (no HTTP)."""
    from concurrent.futures import Future

    from django.conf import settings

    import scheduling.engine as engine
    from scheduling import firing
    from scheduling.engine import SchedulerNode
    from scheduling.leader import lock_for_database

    class Accepted:
        status_code = 200
        ok = True

    def accepted_soon(sends, *, timeout):  # executor_http.post_soon's signature (batch of sends)
        answers = [Future() for _ in sends]
        for answer in answers:
            answer.set_result(Accepted())
        return answers

    lock = lock_for_database(settings.DATABASES["default"], f"profile_{os.getpid()}", 30)
    node = SchedulerNode(instance_id="profile-1", host="127.0.0.1", port=0, lock=lock)
    dispatcher = node.dispatcher  # as the engine builds it (fire-ahead staging included, if any)
    delivery = dispatcher.delivery
    delivery.transport = staticmethod(lambda executor, url, payload, timeout: Accepted())
    delivery.transport_soon = staticmethod(accepted_soon)
    node.health.probe = staticmethod(lambda executor, timeout: True)
    engine.fire_due = timer.wrap("fire_due", firing.fire_due)  # the engine's own reference, wrapped afresh
    for owner, name in ((node, "hold_leadership"), (node, "heartbeat"), (dispatcher, "dispatch_pending"),
                        (dispatcher, "sweep_timeouts"), (node, "purge_history")):
        setattr(owner, name, timer.wrap(name, getattr(owner, name)))
    node.health.check_health = timer.wrap("check_health", node.health.check_health)
    return node


def populate(size: int, busy: int, now: datetime, *, analyze: bool = False) -> None:
    """``size`` active tasks: ``busy`` every-second crons, the rest daily crons spread over the day but
    kept two hours or more away from ``now`` (truly idle during the run), all assigned to one executor."""
    from bench.ours import flush
    from bench.scale import analyze_tables, idle_cron
    from executors.models import Executor
    from tasks.choices import TaskStatus
    from tasks.models import Task, TaskExecutor
    from tasks.services import next_fire_after

    flush()
    executor = Executor.objects.create(name="profile-stub", instance_id="profile-stub",
                                       base_url="http://127.0.0.1:9")
    specs = [("busy", EVERY_SECOND)] * busy + [("idle", idle_cron(i, now.hour)) for i in range(size - busy)]
    cache: dict[str, datetime | None] = {}
    tasks = []
    for i, (kind, cron) in enumerate(specs):
        task = Task(name=f"{kind}-{i}", cron_expression=cron, status=TaskStatus.ACTIVE, max_retry=0,
                    timeout_seconds=60)
        if cron not in cache:
            cache[cron] = next_fire_after(task, now - timedelta(seconds=1))
        task.next_run_time = cache[cron]
        tasks.append(task)
    Task.objects.bulk_create(tasks, batch_size=2000)
    TaskExecutor.objects.bulk_create([TaskExecutor(task_id=t.pk, executor_id=executor.pk) for t in tasks],
                                     batch_size=2000)
    if analyze:
        analyze_tables()


@contextmanager
def recording(timer: StepTimer):
    from django.db import connection

    with connection.execute_wrapper(timer.record_sql):
        yield


def run_ticks(size: int, busy: int, seconds: int, idle_per_second: int, *, analyze: bool = False) -> StepTimer:
    """``seconds`` simulated seconds of the loop: at each second a tick (the every-second tasks fall due),
    then ``idle_per_second`` ticks 0.2 s apart, as the real loop's idle waits space them."""
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    populate(size, busy, base, analyze=analyze)
    timer = StepTimer()
    node = build_node(timer)
    node.register(base)
    node.tick(base)  # becomes leader; its first pass warms caches and is not counted
    node.dispatcher.wait_idle(10)
    timer.reset()
    per_kind: dict[str, tuple[list[float], list[float]]] = {"tick": ([], []), "busy tick": ([], []),
                                                           "idle tick": ([], [])}
    with recording(timer):
        for second in range(1, seconds + 1):
            for j in range(idle_per_second + 1):
                wall, cpu = time.perf_counter(), time.thread_time()
                work = node.tick(base + timedelta(seconds=second, milliseconds=200 * j))
                for kind in ("tick", "busy tick" if work else "idle tick"):
                    per_kind[kind][0].append(time.perf_counter() - wall)
                    per_kind[kind][1].append(time.thread_time() - cpu)
                node.dispatcher.wait_idle(10)  # the POSTs and callbacks are not the loop's cost
                _finish_running()
    for kind, (walls, cpus) in per_kind.items():
        timer.wall[kind], timer.cpu[kind] = walls, cpus
    node.shutdown()
    return timer


def _finish_running() -> None:
    """Plays the executors' callbacks: the runs a tick dispatched succeed before the next tick, as on a
    healthy system (the running set stays small at both sizes)."""
    from executions.choices import ExecutionStatus
    from executions.models import TaskExecution

    TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).update(status=ExecutionStatus.SUCCESS)


def _ms(values: list[float], average=statistics.median) -> str:
    return f"{average(values) * 1000:7.2f}" if values else "      –"


def report(results: dict[int, StepTimer], explain_plans: bool) -> None:
    """Per step: wall median and mean, loop-thread CPU mean. The mean matters: a step that is slow once a
    second (staging the every-second tasks' runs) is slow in one tick of five, which a median hides."""
    sizes = list(results)
    print("\nper tick, ms: wall median / wall mean / loop-thread CPU mean")
    print(f"{'step':18}" + "".join(f"{f'{n} tasks':>28}" for n in sizes) + "   ratio of wall means")
    for step in ("tick", "busy tick", "idle tick", *STEPS):
        cells = "".join(f"{_ms(results[n].wall[step])} /{_ms(results[n].wall[step], statistics.fmean)} /"
                        f"{_ms(results[n].cpu[step], statistics.fmean)}  " for n in sizes)
        first, last = (statistics.fmean(results[n].wall[step] or [0]) for n in (sizes[0], sizes[-1]))
        print(f"{step:18}{cells}  {last / first if first else float('nan'):5.2f}")
    for n in sizes:
        print(f"\nqueries at {n} tasks (per tick, median ms, max ms):")
        ticks = len(results[n].wall["tick"])
        for step, shapes in results[n].sql.items():
            for sql, times in sorted(shapes.items(), key=lambda item: -sum(item[1])):
                print(f"  {step:16} {len(times) / ticks:5.2f}x {_ms(times)} {_ms(times, max)}  {sql[:150]}")
    if explain_plans:
        _print_plans(results[sizes[-1]])


def _print_plans(timer: StepTimer) -> None:
    from django.db import connection

    print("\nEXPLAIN (largest size), statements re-run with the literal values of their last call:")
    for step, shapes in timer.sql.items():
        for sql in shapes:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            literal = LAST_LITERAL.get(sql)
            if literal is None:
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + literal)
                rows = cursor.fetchall()
            print(f"- {step}: {sql[:160]}")
            for row in rows:
                print(f"    table={row[2]} type={row[3]} key={row[5]} rows={row[8]} extra={row[9]}")


LAST_LITERAL: dict[str, str] = {}


def capture_literals(execute, sql, params, many, context):
    """Keeps the last call of each statement shape with its parameters inlined (for EXPLAIN)."""
    from django.db import connection

    result = execute(sql, params, many, context)
    if not many and sql.lstrip().upper().startswith("SELECT"):
        LAST_LITERAL[_shape(sql)] = connection.ops.last_executed_query(context["cursor"], sql, params)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--busy", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=30, help="simulated seconds (one busy tick each)")
    parser.add_argument("--idle-ticks", type=int, default=4, help="idle ticks per second after the busy one")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE TABLE after the bulk inserts")
    args = parser.parse_args()
    from bench.ours import prepare_database

    prepare_database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    from django.db import connection

    results = {}
    with connection.execute_wrapper(capture_literals):
        for size in args.sizes:
            began = time.monotonic()
            results[size] = run_ticks(size, args.busy, args.seconds, args.idle_ticks, analyze=args.analyze)
            print(f"{size} tasks: {args.seconds} s simulated, {time.monotonic() - began:.1f} s with setup", flush=True)
    report(results, args.explain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
