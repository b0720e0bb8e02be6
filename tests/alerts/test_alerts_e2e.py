"""Alerts with real processes (``manage.py runscheduler``, executors) and a real webhook receiver in the
test process: a failing task, an executor killed, and the leader SIGKILLed in the middle of a delivery."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest
from django.db import connection

from alerts.choices import NotificationStatus
from alerts.models import AlertRule, Channel, Notification
from core.states import ExecutionStatus
from executions.models import TaskExecution
from executions.services import finish
from executors.models import Executor
from tests.alerts.receivers import WebhookReceiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver():
    hook = WebhookReceiver().start()
    yield hook
    if hook.hold is not None:
        hook.hold.set()
    hook.stop()


def webhook_channel(receiver: WebhookReceiver) -> Channel:
    AlertRule.objects.create()
    channel = Channel(name="e2e hook")
    channel.url = receiver.url()
    channel.save()
    return channel


def titles(receiver: WebhookReceiver) -> list[str]:
    return [hook.json["title"] for hook in list(receiver.received)]


def run_to_the_end(cluster, task_id: str) -> str:
    run = cluster.client.trigger_task(task_id, {})
    cluster.wait_until(lambda: TaskExecution.objects.filter(pk=run["id"], status__in=["success", "failed"]).exists(),
                       20, "the run to end")
    return TaskExecution.objects.get(pk=run["id"]).status


def test_a_task_failing_three_times_alerts_once_then_recovers_once(cluster, receiver):
    webhook_channel(receiver)
    cluster.start(schedulers=["s1"], executors=["ex-a"])
    task = cluster.make_task("fail.flaky", max_retry=0)  # the test executor's "fail" handler
    assert [run_to_the_end(cluster, task["id"]) for _ in range(3)] == ["failed"] * 3
    cluster.wait_until(lambda: titles(receiver), 10, "the alert")
    cluster.client.update_task(task["id"], name="echo.flaky")  # now the "echo" handler: it succeeds
    assert run_to_the_end(cluster, task["id"]) == "success"
    cluster.wait_until(lambda: len(titles(receiver)) == 2, 10, "the recovery")
    assert run_to_the_end(cluster, task["id"]) == "success"
    first, second = titles(receiver)
    assert first.startswith("[ALERT] fail.flaky: run failed") and second.startswith("[RECOVERED] echo.flaky")
    assert Notification.objects.count() == 2


def test_an_executor_killed_makes_one_executor_alert(cluster, receiver):
    webhook_channel(receiver)
    cluster.start(schedulers=["s1"], executors=["ex-a"])
    cluster.executors["ex-a"].send(signal.SIGKILL)
    alive = [cluster.schedulers["s1"], cluster.web]
    cluster.procs.wait_until(lambda: any("executor" in t and "unhealthy" in t for t in titles(receiver)), 30,
                             "the executor alert", watch=alive)
    # Health checks go on failing (one a second here): none of them is news.
    executor_id = cluster.executor_ids["ex-a"]
    cluster.procs.wait_until(lambda: Executor.objects.get(pk=executor_id).health_check_failures >= 8, 30,
                       "five more failed health checks", watch=alive)
    assert len([title for title in titles(receiver) if "executor" in title]) == 1


def test_an_executor_killed_mid_run_makes_one_lost_run_alert(cluster, receiver):
    """Its lease runs out (4 s in the tests' tunables) and the executor does not answer: the run is lost, and
    alerts as lost, once; the executor's own alert is another incident, also once."""
    webhook_channel(receiver)
    cluster.start(schedulers=["s1"], executors=["ex-a"])
    task = cluster.make_task("sleep.lost", max_retry=0, parameters={"seconds": 60})  # the "sleep" handler
    run = cluster.client.trigger_task(task["id"], {"seconds": 60})
    # Its handler began (the executor's journal), not just claimed: killed before accepting, the run would fail
    # over to no executor and fail, not be lost.
    executor = cluster.executors["ex-a"]
    cluster.wait_until(lambda: any(event["execution_id"] == run["id"] for event in executor.events("start")), 20,
                       "the run to start on the executor")
    executor.send(signal.SIGKILL)
    alive = [cluster.schedulers["s1"], cluster.web]
    cluster.procs.wait_until(lambda: any("run lost" in title for title in titles(receiver)), 60, "the lost-run alert",
                             watch=alive)
    cluster.procs.wait_until(lambda: any("unhealthy" in title for title in titles(receiver)), 30,
                             "the executor alert", watch=alive)
    assert [title for title in titles(receiver) if "sleep.lost" in title] == ["[ALERT] sleep.lost: run lost"]
    assert len([title for title in titles(receiver) if "executor" in title]) == 1
    lost = TaskExecution.objects.get(pk=run["id"])
    assert lost.status == "failed" and "lost: " in lost.logs


@pytest.mark.multinode
@pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                    reason="needs a server-side session lock: MySQL/MariaDB or PostgreSQL")
def test_leader_killed_during_delivery_loses_nothing_and_repeats_only_the_call_in_flight(
        cluster, receiver, make_task, make_execution, capsys):
    """The receiver holds the first request, so the leader is killed in the middle of a channel call. Every
    notification arrives; the one in flight may arrive twice, with the same X-Scheduler-Notification id, and
    nothing else does."""
    webhook_channel(receiver)
    receiver.hold = threading.Event()
    cluster.start(schedulers=["n1", "n2"], executors=[], web=False,
                  scheduler_env={"SCHEDULER_ALERT_SENDING_LEASE": "3"})
    leader = cluster.wait_one_leader()
    tasks = [make_task(name=f"report-{n}", max_retry=0) for n in range(8)]
    for task in tasks:
        execution = make_execution(task=task, status=ExecutionStatus.RUNNING)
        finish(execution, ExecutionStatus.FAILED, now=execution.scheduled_time)
    cluster.wait_until(lambda: receiver.received, 20, "the leader to begin sending")
    cluster.schedulers[leader].send(signal.SIGKILL)
    receiver.hold.set()
    cluster.wait_one_leader(other_than=leader)
    survivor = [child for child in cluster.schedulers.values() if child.alive]
    cluster.procs.wait_until(lambda: Notification.objects.filter(status=NotificationStatus.SENT).count() == 8, 30,
                       "every notification sent", watch=survivor)

    expected = set(Notification.objects.values_list("pk", flat=True))
    received = Counter(hook.headers["X-Scheduler-Notification"] for hook in receiver.received)
    assert set(received) == expected  # none lost
    repeated = [pk for pk, count in received.items() if count > 1]
    with capsys.disabled():
        print(f"\n[alerts failover] {len(expected)} notifications, {sum(received.values())} requests received, "
              f"{len(repeated)} repeated (the call in flight)")
    assert len(repeated) <= 1 and all(received[pk] == 2 for pk in repeated)
    if repeated:  # only the call in flight when the leader died
        assert receiver.received[0].headers["X-Scheduler-Notification"] == repeated[0]
