"""Lost-run detection and double starts at the executor boundary (issue #15, README "Leases").

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_bench .venv/bin/python bench/lost_detection.py \\
        --kills 10 --freezes 10

Creates (if needed) and migrates the database named in DATABASE_URL (SQLite too), empties it (it is the
bench's own), starts a web server, one ``runscheduler`` and two journalling SDK executors on loopback, with
the production lease settings (15 s leases renewed every 5 s, 5 s dispatch timeout). Then:

- kills: a 60 s ``sleep`` run is triggered; once its handler started, at a random point of the renewal cycle,
  its executor is SIGKILLed; measured: from the kill to the run leaving ``running`` (lost). The executor is
  restarted under its instance id afterwards.
- freezes: a per-second ``echo`` task round-robins over both executors; one is SIGSTOPped for ``--freeze``
  seconds, then SIGCONTed; counted from both executors' journals: executions whose handler began on both,
  and fires whose work began more than once (retries included).

Prints median and max detection time and the double starts. Child logs go to var/bench-logs/lost/.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

from bench.failover import prepare_django  # noqa: E402 - needs the repository on sys.path
from tests.processes import Cluster, Processes  # noqa: E402

PRODUCTION_LEASES = {"SCHEDULER_LEASE_SECONDS": "15", "SCHEDULER_LEASE_RENEW_SECONDS": "5",
                     "SCHEDULER_DISPATCH_TIMEOUT": "5", "HEALTH_CHECK_TIMEOUT": "1"}
EXECUTORS = ("ex-a", "ex-b")



def starts(cluster: Cluster) -> dict[str, set[str]]:
    began: dict[str, set[str]] = {}
    for instance_id, child in cluster.executors.items():
        for event in child.events("start"):
            began.setdefault(event["execution_id"], set()).add(instance_id)
    return began


def measure_kills(cluster: Cluster, kills: int, rng: random.Random) -> list[float]:
    from django.utils import timezone

    from executions.models import TaskExecution
    from executors.models import Executor

    task = cluster.make_task("sleep", executors=EXECUTORS, parameters={"seconds": 60}, timeout_seconds=600,
                             max_retry=0)
    detected = []
    for trial in range(1, kills + 1):
        execution_id = cluster.client.trigger_task(task["id"])["id"]
        victim = cluster.wait_until(lambda eid=execution_id: next(iter(starts(cluster).get(eid, ())), None), 30,
                                    "the run to start")
        time.sleep(rng.uniform(0, 5))  # anywhere in the renewal cycle
        child = cluster.executors[victim]
        child.send(signal.SIGKILL)
        killed = time.monotonic()
        child.wait(10)
        cluster.wait_until(lambda eid=execution_id: TaskExecution.objects.filter(pk=eid)
                           .exclude(status="running").exists(), 120, "the run to be lost")
        detected.append(time.monotonic() - killed)
        print(f"  kill {trial:2}: {victim} -> lost after {detected[-1]:5.1f} s", flush=True)
        restarted = timezone.now()
        cluster.executors[victim] = cluster.procs.start_executor(victim)
        cluster.wait_until(lambda v=victim, t=restarted: Executor.objects.filter(instance_id=v, updated_at__gt=t)
                           .exists(), 30, "the restarted executor to register")
        time.sleep(2)  # health-checked again
    return detected


def measure_freezes(cluster: Cluster, freezes: int, freeze: float, rng: random.Random) -> tuple[int, int, int]:
    from executions.models import TaskExecution

    task = cluster.make_task("echo", cron="*/1 * * * * *", executors=EXECUTORS, timeout_seconds=10, max_retry=1,
                             load_balance_strategy="round_robin")
    for trial in range(1, freezes + 1):
        time.sleep(rng.uniform(3, 5))
        victim = cluster.executors[rng.choice(EXECUTORS)]
        victim.freeze()
        time.sleep(freeze)
        victim.thaw()
        print(f"  freeze {trial:2}: {victim.instance_id} for {freeze:g} s", flush=True)
    time.sleep(10)  # the thawed executors answer what piled up
    cluster.client.pause_task(task["id"])
    time.sleep(5)
    began = starts(cluster)
    fire_of = dict(TaskExecution.objects.filter(task_id=task["id"]).values_list("pk", "scheduled_time"))
    on_two = sum(1 for where in began.values() if len(where) > 1)
    per_fire = Counter(fire_of[pk] for pk in began if pk in fire_of)
    return on_two, sum(1 for n in per_fire.values() if n > 1), len(fire_of)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--freezes", type=int, default=10)
    parser.add_argument("--freeze", type=float, default=10.0, help="seconds each freeze lasts")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{REPO / 'var' / 'bench-lost.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    prepare_django(url)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    rng = random.Random(seed)
    procs = Processes(url, log_dir=REPO / "var" / "bench-logs" / "lost", env=PRODUCTION_LEASES)
    try:
        cluster = Cluster(procs).start(executors=EXECUTORS)
        print(f"lost-run detection: seed {seed}, leases 15 s renewed every 5 s, dispatch timeout 5 s", flush=True)
        if args.kills:
            detected = sorted(measure_kills(cluster, args.kills, rng))
            print(f"SIGKILL x{len(detected)}: lost after median {statistics.median(detected):.1f} s, "
                  f"min {detected[0]:.1f} s, max {detected[-1]:.1f} s")
        if args.freezes:
            on_two, fires_twice, fires = measure_freezes(cluster, args.freezes, args.freeze, rng)
            print(f"SIGSTOP x{args.freezes} ({args.freeze:g} s each) under a per-second task, {fires} executions: "
                  f"{on_two} started on two executors, {fires_twice} fires whose work began twice")
    finally:
        procs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
