"""SchedulerNode steps with a fake lock and a fake clock: leadership, fencing, heartbeats."""

import time
from datetime import timedelta

import pytest

from executions.models import TaskExecution
from scheduling.engine import MIN_WAKE_SECONDS, SchedulerNode
from scheduling.models import SchedulerInstance
from tests.scheduling.conftest import T0

pytestmark = pytest.mark.django_db(transaction=True)


class FakeLock:
    name = "fake"
    keepalive_seconds = None

    def __init__(self, available: bool = True) -> None:
        self.available = available
        self.held = False
        self.released = 0

    def try_acquire(self) -> bool:
        self.held = self.held or self.available
        return self.held

    def still_held(self) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False
        self.released += 1


@pytest.fixture
def node(clock):
    lock = FakeLock()
    instance = SchedulerNode(instance_id="node-a", host="127.0.0.1", port=8000, lock=lock, clock=clock)
    instance.register(clock.now)
    yield instance
    instance.dispatcher.shutdown()


def row(instance_id="node-a"):
    return SchedulerInstance.objects.get(instance_id=instance_id)


def test_node_registers_and_becomes_the_only_leader(node, clock):
    SchedulerInstance.objects.create(instance_id="node-b", host="h", port=1, is_leader=True)
    assert node.tick(clock.now) is False  # nothing due yet
    assert node.is_leader and row().is_leader and row().leader_since == clock.now
    assert not row("node-b").is_leader


def test_follower_does_not_fire(node, clock, make_task):
    node.lock.available = False
    make_task()
    node.tick(T0)
    assert not node.is_leader
    assert TaskExecution.objects.count() == 0


def test_leader_that_lost_its_lock_steps_down_before_writing(node, clock, make_task):
    node.tick(T0 - timedelta(seconds=1))
    assert node.is_leader
    make_task()
    node.lock.held = False  # e.g. the server closed the frozen leader's session
    node.tick(T0)
    assert not node.is_leader and not row().is_leader
    assert TaskExecution.objects.count() == 0  # fenced: nothing fired


def test_followers_retry_the_election_at_the_configured_interval(node, clock, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "ELECTION_RETRY_SECONDS": 1.0}
    node.lock.available = False
    node.tick(T0)
    node.lock.available = True
    node.tick(T0 + timedelta(milliseconds=500))
    assert not node.is_leader
    node.tick(T0 + timedelta(seconds=1))
    assert node.is_leader


def test_heartbeat_touches_the_row_on_its_interval(node, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL_SECONDS": 5.0}
    assert node.heartbeat(T0 + timedelta(seconds=4)) is False
    assert node.heartbeat(T0 + timedelta(seconds=5)) is True
    assert row().updated_at == T0 + timedelta(seconds=5)


def test_shutdown_releases_the_lock_and_clears_the_flag(node, clock):
    node.tick(clock.now)
    node.shutdown()
    assert node.lock.released >= 1 and not row().is_leader


def test_leader_purges_history_past_retention_once_a_day(node, clock, settings, make_task):
    from executions.choices import ExecutionStatus

    settings.EXECUTION_RETENTION_DAYS = 30
    task = make_task(next_run_time=T0 + timedelta(days=365))
    old = TaskExecution.objects.create(task=task, scheduled_time=T0 - timedelta(days=31),
                                       status=ExecutionStatus.SUCCESS)
    recent = TaskExecution.objects.create(task=task, scheduled_time=T0 - timedelta(days=29),
                                          status=ExecutionStatus.SUCCESS)
    node.tick(T0)
    node.purges[0].running.result(timeout=10)
    assert list(TaskExecution.objects.values_list("pk", flat=True)) == [recent.pk]
    assert old.pk
    node.purges[1].running.result(timeout=10)
    assert node.purges[0].start_if_due(T0 + timedelta(hours=23), node.dispatcher.pool) is False  # once a day
    assert node.purges[0].start_if_due(T0 + timedelta(days=1), node.dispatcher.pool) is True


def test_leader_purges_nonces_too_old_to_replay_every_minute(node, make_executor):
    from executors.models import SeenNonce

    executor = make_executor()
    SeenNonce.objects.create(executor=executor, nonce="old-" + "x" * 16, seen_at=T0 - timedelta(hours=1))
    fresh = SeenNonce.objects.create(executor=executor, nonce="new-" + "x" * 16, seen_at=T0)
    node.tick(T0)
    node.purges[1].running.result(timeout=10)
    assert list(SeenNonce.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert node.purges[1].start_if_due(T0 + timedelta(seconds=30), node.dispatcher.pool) is False
    assert node.purges[1].start_if_due(T0 + timedelta(minutes=1), node.dispatcher.pool) is True


def test_ticks_and_leadership_are_measured(node, clock):
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("scheduler_tick_duration_seconds_count") or 0
    node.tick(clock.now)
    assert REGISTRY.get_sample_value("scheduler_tick_duration_seconds_count") == before + 1
    assert REGISTRY.get_sample_value("scheduler_is_leader") == 1
    node.step_down(clock.now, "test")
    assert REGISTRY.get_sample_value("scheduler_is_leader") == 0


class Intervals:
    """A stop event for the keep-alive: each wait() is one interval passing; stops after ``count``."""

    def __init__(self, count: int) -> None:
        self.left, self.waited = count, []

    def wait(self, timeout: float) -> bool:
        self.waited.append(timeout)
        if not self.left:
            return True
        self.left -= 1
        return False


class CountingLock(FakeLock):
    keepalive_seconds = 2.5

    def __init__(self) -> None:
        super().__init__()
        self.pings = 0

    def still_held(self) -> bool:
        self.pings += 1
        return super().still_held()


@pytest.fixture
def keepalive_node(clock):
    instance = SchedulerNode(instance_id="node-k", host="127.0.0.1", port=8000, lock=CountingLock(), clock=clock)
    yield instance
    instance.dispatcher.shutdown()


def test_the_keepalive_touches_the_lock_every_interval_while_the_leader_makes_progress(keepalive_node):
    keepalive_node.lock.try_acquire()
    keepalive_node.is_leader = True
    stop = Intervals(3)
    keepalive_node.keep_lock_alive(stop)
    assert keepalive_node.lock.pings == 3 and stop.waited == [2.5] * 4


def test_the_keepalive_lets_a_stuck_leader_lose_the_lock(keepalive_node, settings):
    keepalive_node.lock.try_acquire()
    keepalive_node.is_leader = True
    keepalive_node._progress_at = time.monotonic() - settings.SCHEDULER["STALL_LIMIT_SECONDS"]  # no step began since
    keepalive_node.keep_lock_alive(Intervals(3))
    assert keepalive_node.lock.pings == 0  # the server's idle timeout will free it for a working node


def test_a_follower_keepalive_touches_nothing(keepalive_node):
    keepalive_node.keep_lock_alive(Intervals(3))
    assert keepalive_node.lock.pings == 0


def test_the_loop_wakes_for_a_staged_run_instead_of_sleeping_a_whole_tick(node, clock, make_task, make_executor):
    task = make_task(next_run_time=T0 + timedelta(seconds=1))
    make_executor(tasks=[task])
    assert node.fire_ahead > timedelta(0)  # the default fires ahead
    node.tick(T0)  # fires the runs due within the fire-ahead time
    node.tick(T0)  # stages them
    claim_at = T0 + timedelta(seconds=1) - node.dispatcher.staging.claim_ahead
    assert node.idle_seconds(claim_at - timedelta(milliseconds=100), idle=0.2) == pytest.approx(0.1)
    node.tick(claim_at)  # claims them ahead of their time
    # Woken 50 ms before their time to read them again (CHECK_AHEAD), then at their time to POST them.
    assert node.idle_seconds(T0 + timedelta(milliseconds=900), idle=0.2) == pytest.approx(0.05)
    node.tick(T0 + timedelta(milliseconds=950))
    assert node.idle_seconds(T0 + timedelta(milliseconds=960), idle=0.2) == pytest.approx(0.04)
    assert node.idle_seconds(T0, idle=0.2) == 0.2  # due later than a tick: the tick decides
    assert node.idle_seconds(T0 + timedelta(seconds=2), idle=0.2) == MIN_WAKE_SECONDS  # overdue: poll, not spin


def test_the_leaders_tick_runs_the_alert_pass_on_a_worker(node, clock, make_task, make_execution):
    from alerts.models import AlertEvent, Channel, Notification
    from executions.choices import ExecutionStatus
    from executions.services import finish

    channel = Channel(name="log")
    channel.url = "log://"
    channel.save()
    sent = []
    node.alerts.transport = lambda url, message, *, signing_secret: sent.append(message.title)
    run = make_execution(task=make_task(name="nightly", max_retry=0), status=ExecutionStatus.RUNNING)
    finish(run, ExecutionStatus.FAILED, now=T0)
    node.tick(T0)
    node.alert_job.running.result(timeout=10)
    assert sent == ["[ALERT] nightly: run failed"]
    assert AlertEvent.objects.get().processed_at == T0 and Notification.objects.get().status == "sent"
    assert node.deliver_alerts(T0 + timedelta(seconds=0.1)) is False  # every ALERT_INTERVAL_SECONDS
    assert node.deliver_alerts(T0 + timedelta(seconds=1)) is True
    node.alert_job.running.result(timeout=10)


def test_taking_over_after_a_gap_records_how_long_nobody_led(node, clock):
    from alerts.models import AlertEvent

    SchedulerInstance.objects.create(instance_id="node-b", host="h", port=1, is_leader=True,
                                     leader_since=T0 - timedelta(hours=1))
    SchedulerInstance.objects.filter(instance_id="node-b").update(updated_at=T0 - timedelta(seconds=90))
    node.tick(T0)
    event = AlertEvent.objects.get(condition="no_leader")
    assert event.node == "node-a" and event.details["seconds"] == 90


def test_alert_history_is_purged_with_the_execution_history(node, settings, make_task):
    from alerts.models import AlertEvent, Channel, Incident, Notification

    settings.EXECUTION_RETENTION_DAYS = 30
    AlertEvent.objects.create(condition="run_failed", occurred_at=T0, processed_at=T0 - timedelta(days=2))
    kept_event = AlertEvent.objects.create(condition="run_failed", occurred_at=T0, processed_at=T0)
    channel = Channel(name="log")
    channel.url = "log://"
    channel.save()
    for age in (31, 29):
        when = T0 - timedelta(days=age)
        Notification.objects.create(channel=channel, title=f"{age}", body="", status="sent", event_at=when,
                                    created_at=when, next_attempt_at=when)
        Incident.objects.create(condition="run_failed", subject=f"task:{age}", summary=f"{age}", opened_at=when,
                                last_seen_at=when, resolved_at=when)
    node.tick(T0)
    [alert_purge] = [purge for purge in node.purges if purge.name.startswith("alert")]
    alert_purge.running.result(timeout=10)
    assert list(AlertEvent.objects.values_list("pk", flat=True)) == [kept_event.pk]
    assert list(Notification.objects.values_list("title", flat=True)) == ["29"]
    assert list(Incident.objects.values_list("summary", flat=True)) == ["29"]
