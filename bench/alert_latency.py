"""Alert latency: from the event (a run's end committed) to the channel's call reaching the receiver.

    DATABASE_URL=mysql://root@127.0.0.1:3306/scheduler_bench .venv/bin/python bench/alert_latency.py --events 100

Creates (if needed) and migrates the database named in DATABASE_URL and empties it (it is the bench's own;
SQLite works too), starts one ``runscheduler`` node with the production alert interval (0.5 s unless
SCHEDULER_ALERT_INTERVAL says otherwise) and a signed-webhook receiver on loopback. Then ends ``--events``
runs of as many tasks as failed, one every ``--gap`` seconds, each through ``executions.services.finish``
(the run's end and its outbox event in one transaction, as the callback does), and records when each
notification reaches the receiver. Prints p50/p99/max of receipt time minus the event's time; the target is
p99 <= 5 s. Child logs go to var/bench-logs/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_project.settings")

from bench.failover import prepare_django  # noqa: E402 - needs the repository on sys.path
from tests.processes import Processes, wait_for  # noqa: E402

TARGET_P99_SECONDS = 5.0



def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between two failures")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{REPO / 'var' / 'bench-alerts.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    prepare_django(url)

    from django.conf import settings

    from alerts.models import AlertRule, Channel
    from core.states import ExecutionStatus
    from executions.models import TaskExecution
    from executions.services import finish
    from tasks.models import Task
    from tests.alerts.receivers import WebhookReceiver

    receiver = WebhookReceiver().start()
    arrived: dict[str, float] = {}
    AlertRule.objects.create()
    channel = Channel(name="bench hook")
    channel.url = receiver.url()
    channel.save()
    procs = Processes(url, log_dir=REPO / "var" / "bench-logs", env={
        "SCHEDULER_ALERT_INTERVAL": os.environ.get("SCHEDULER_ALERT_INTERVAL", "0.5"),
        "SCHEDULER_TICK_SECONDS": "0.2", "SCHEDULER_HEARTBEAT_INTERVAL": "5",
        "SECRET_KEY": settings.SECRET_KEY})  # the channel's URL is encrypted with it
    try:
        scheduler = procs.start_scheduler("bench-alerts")
        procs.wait_until(lambda: _leads("bench-alerts"), 60, "the scheduler to lead", watch=[scheduler])
        events: dict[str, float] = {}
        for n in range(args.events):
            task = Task.objects.create(name=f"bench-alert-{n}", cron_expression="0 0 1 1 *", max_retry=0)
            run = TaskExecution.objects.create(task=task, status=ExecutionStatus.RUNNING,
                                               scheduled_time=datetime.now(UTC), start_time=datetime.now(UTC))
            finish(run, ExecutionStatus.FAILED, now=datetime.now(UTC))
            events[task.name] = time.time()  # committed: finish() ran in its own transaction
            time.sleep(args.gap)

        def all_arrived() -> bool:
            for hook in list(receiver.received):
                name = hook.json["title"].split("] ", 1)[1].split(":", 1)[0]
                arrived.setdefault(name, hook.received_at)
            return len(arrived) >= len(events)

        wait_for(all_arrived, 60, interval=0.1, message="every alert at the receiver")
        latencies = [arrived[name] - at for name, at in events.items()]
    finally:
        procs.close()
        receiver.stop()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"alert latency over {len(latencies)} events (one every {args.gap} s, {url.split(':', 1)[0]}): "
          f"p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(latencies):.3f} s, mean {statistics.mean(latencies):.3f} s "
          f"(target p99 <= {TARGET_P99_SECONDS:g} s: {'met' if p99 <= TARGET_P99_SECONDS else 'MISSED'})")
    return 0 if p99 <= TARGET_P99_SECONDS else 1


def _leads(instance_id: str) -> bool:
    from scheduling.models import SchedulerInstance

    return SchedulerInstance.objects.filter(instance_id=instance_id, is_leader=True).exists()


if __name__ == "__main__":
    raise SystemExit(main())
