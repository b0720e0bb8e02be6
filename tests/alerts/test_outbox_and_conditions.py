"""The outbox is written in the transaction of the change, and each condition becomes the incident and the
notification it should: consecutive failures, skipped fires with their cause, duration anomalies, executor
health, a leaderless gap, stale scheduler nodes. The transport is a recording stub (the real receivers are
in test_real_receivers.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from alerts.delivery import AlertDelivery, check_nodes, failure_streak
from alerts.models import AlertEvent, AlertRule, Incident, Notification
from alerts.outbox import forget_cached_rules, record_leaderless
from core.alerting import Condition
from core.states import ExecutionStatus
from executions.models import TaskExecution
from executions.services import apply_callback, finish, lose_run, reconcile_held
from scheduling.firing import fire_task
from scheduling.health import record_check

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self) -> None:
        self.sent: list = []

    def __call__(self, url, message, *, signing_secret):
        self.sent.append(message)


@pytest.fixture
def recorded(delivery, make_channel) -> Recorder:
    make_channel("log://")
    recorder = Recorder()
    delivery.transport = recorder
    return recorder


def end(make_execution, task, status, clock, *, seconds=1.0, logs=""):
    execution = make_execution(task=task, status=ExecutionStatus.RUNNING, start_time=clock.advance(60), logs=logs)
    finish(execution, status, now=clock.advance(seconds))
    return execution


def test_an_event_exists_only_if_the_runs_end_committed(make_task, make_execution, clock):
    execution = make_execution(task=make_task(max_retry=0), status=ExecutionStatus.RUNNING, start_time=clock.now)
    with pytest.raises(RuntimeError), transaction.atomic():
        finish(execution, ExecutionStatus.FAILED, now=clock.now)
        assert AlertEvent.objects.count() == 1
        raise RuntimeError("the transaction of the change rolls back")
    assert AlertEvent.objects.count() == 0


def test_successes_are_recorded_only_when_they_matter(make_task, make_execution, global_rule, clock):
    task = make_task(max_retry=0)
    end(make_execution, task, ExecutionStatus.SUCCESS, clock)
    assert AlertEvent.objects.count() == 0  # nothing open, no duration watch: no write on the hot path
    Incident.objects.create(condition=Condition.RUN_FAILED, subject=f"task:{task.pk}", open_key="x", task=task,
                            summary="s", opened_at=clock.now, last_seen_at=clock.now)
    forget_cached_rules()  # what each process does once a second
    end(make_execution, task, ExecutionStatus.SUCCESS, clock)
    assert AlertEvent.objects.filter(firing=False).count() == 1


def test_a_success_unseen_by_a_stale_process_still_recovers(make_task, make_execution, global_rule, recorded,
                                                            delivery, clock):
    task = make_task(max_retry=0, name="nightly")
    end(make_execution, task, ExecutionStatus.FAILED, clock)
    end(make_execution, task, ExecutionStatus.SUCCESS, clock)  # nothing open yet: no event for it
    delivery.run_once(clock.advance(1))  # opens the incident
    assert [m.kind for m in recorded.sent] == ["alert"]
    delivery.run_once(clock.advance(10))  # the sweep finds the later success
    assert [m.kind for m in recorded.sent] == ["alert", "recovery"]
    assert not Incident.objects.filter(resolved_at__isnull=True).exists()


def test_consecutive_failures_open_one_incident_at_the_threshold(make_task, make_execution, global_rule, recorded,
                                                                 delivery, clock):
    global_rule.on_failure = "off"
    global_rule.consecutive_failures = 3
    global_rule.save()
    task = make_task(max_retry=0, name="flaky")
    for n in range(5):
        end(make_execution, task, ExecutionStatus.FAILED, clock)
        delivery.run_once(clock.advance(1))
        assert len(recorded.sent) == (1 if n >= 2 else 0)
    assert "3 consecutive failures" in recorded.sent[0].title
    assert failure_streak(task.pk, 10) == 5


def lost_run(make_execution, task, executor, clock):
    """A run its executor holds under a lease, accepted a while ago."""
    return make_execution(task=task, executor=executor, status=ExecutionStatus.RUNNING, attempt=1,
                          start_time=clock.advance(60), accept_by=clock.now, lease_until=clock.now,
                          deadline=clock.now + timedelta(seconds=60))


def test_a_lost_run_alerts_as_lost_with_its_reason(make_task, make_execution, make_executor, global_rule, recorded,
                                                   delivery, clock):
    run = lost_run(make_execution, make_task(max_retry=0, name="nightly"), make_executor(), clock)
    assert lose_run(run, now=clock.advance(20), why="the lease ran out")
    event = AlertEvent.objects.get()
    assert event.details["status"] == "lost" and run.status == ExecutionStatus.FAILED  # the row says failed
    delivery.run_once(clock.advance(1))
    [message] = recorded.sent
    assert message.title == "[ALERT] nightly: run lost"
    assert "Cause: lost: the lease ran out" in message.body and "status failed" in message.body


def test_a_run_lost_at_registration_alerts_as_lost(make_task, make_execution, make_executor, global_rule, recorded,
                                                   delivery, clock):
    executor = make_executor()
    run = lost_run(make_execution, make_task(max_retry=0, name="nightly"), executor, clock)
    reconcile_held(executor_id=executor.pk, instance_id=executor.instance_id, held=[], as_of=clock.advance(1),
                   now=clock.now)
    delivery.run_once(clock.advance(1))
    assert [m.title for m in recorded.sent] == ["[ALERT] nightly: run lost"]
    assert TaskExecution.objects.get(pk=run.pk).status == ExecutionStatus.FAILED


def test_a_failure_the_executor_reports_is_not_called_lost(make_task, make_execution, make_executor, global_rule,
                                                           recorded, delivery, clock):
    run = lost_run(make_execution, make_task(max_retry=0, name="nightly"), make_executor(), clock)
    finish(run, ExecutionStatus.FAILED, now=clock.advance(1), logs="lost: a word in the executor's own log")
    delivery.run_once(clock.advance(1))
    assert [m.title for m in recorded.sent] == ["[ALERT] nightly: run failed"]


def test_a_late_success_over_a_presumed_lost_run_recovers_its_incident(make_task, make_execution, make_executor,
                                                                       global_rule, recorded, delivery, clock):
    run = lost_run(make_execution, make_task(max_retry=0, name="nightly"), make_executor(), clock)
    lose_run(run, now=clock.advance(20), why="the lease ran out")
    delivery.run_once(clock.advance(1))
    apply_callback(execution_id=run.pk, status=ExecutionStatus.SUCCESS, result=None, logs=None,
                   end_time=run.deadline - timedelta(seconds=1), now=clock.advance(1))
    delivery.run_once(clock.advance(1))
    assert [m.title for m in recorded.sent] == ["[ALERT] nightly: run lost", "[RECOVERED] nightly: recovered"]
    assert not Incident.objects.filter(resolved_at__isnull=True).exists()


def test_a_skipped_fire_alerts_with_its_cause(make_task, make_execution, global_rule, recorded, delivery, clock):
    due = clock.now.replace(microsecond=0) - timedelta(seconds=clock.now.second % 10)
    task = make_task(name="capped", cron_expression="*/10 * * * * *", max_instances=1, max_retry=0,
                     next_run_time=due)
    make_execution(task=task, status=ExecutionStatus.RUNNING, start_time=clock.now)
    assert fire_task(task, clock.now) == 1
    delivery.run_once(clock.advance(1))
    [message] = recorded.sent
    assert "fire skipped" in message.title and "max_instances" in message.body


def test_duration_anomaly_against_the_recent_median(make_task, make_execution, recorded, delivery, clock):
    AlertRule.objects.create(duration_factor=3)
    task = make_task(name="etl")
    for _ in range(5):
        end(make_execution, task, ExecutionStatus.SUCCESS, clock, seconds=10)
    delivery.run_once(clock.advance(1))
    assert recorded.sent == []
    end(make_execution, task, ExecutionStatus.SUCCESS, clock, seconds=45)
    delivery.run_once(clock.advance(1))
    [message] = recorded.sent
    assert "45.0 s, longer than usual (median 10.0 s)" in message.title
    end(make_execution, task, ExecutionStatus.SUCCESS, clock, seconds=10)
    delivery.run_once(clock.advance(1))
    assert [m.kind for m in recorded.sent] == ["alert", "recovery"]


def test_an_executor_going_unhealthy_and_back_alerts_once_each(make_executor, global_rule, recorded, delivery,
                                                               clock):
    executor = make_executor(name="worker-a")
    for _ in range(6):  # three failures flip it; the further ones are not news
        executor.refresh_from_db()
        record_check(executor, ok=False, now=clock.advance(30))
        delivery.run_once(clock.advance(1))
    for _ in range(2):
        executor.refresh_from_db()
        record_check(executor, ok=True, now=clock.advance(30))
        delivery.run_once(clock.advance(1))
    assert [m.kind for m in recorded.sent] == ["alert", "recovery"]
    assert "executor worker-a" in recorded.sent[0].title and "unhealthy" in recorded.sent[0].title


def test_no_leader_for_longer_than_the_rule_says(global_rule, recorded, delivery, clock):
    record_leaderless(since=clock.now - timedelta(seconds=30), now=clock.now, node="node-2")
    delivery.run_once(clock.advance(1))
    assert recorded.sent == []  # 30 s is below the default 60 s
    record_leaderless(since=clock.now - timedelta(seconds=90), now=clock.now, node="node-2")
    delivery.run_once(clock.advance(1))
    [message] = recorded.sent
    assert "no scheduler led the cluster" in message.title and "node-2 took over" in message.body


def test_a_stale_node_alerts_once_and_recovers(global_rule, recorded, clock):
    delivery = AlertDelivery(clock=clock, heartbeats=lambda: heartbeats)
    delivery.transport = recorded
    heartbeats = [("node-1", clock.now), ("node-2", clock.now - timedelta(minutes=5))]
    for _ in range(3):
        delivery.run_once(clock.advance(10))
    heartbeats = [("node-1", clock.now), ("node-2", clock.now)]
    delivery.run_once(clock.advance(10))
    assert [m.kind for m in recorded.sent] == ["alert", "recovery"]
    assert "node-2 stopped heartbeating" in recorded.sent[0].title
    assert check_nodes(heartbeats, clock.now) == 0


def test_a_disabled_rule_makes_no_notification(make_task, make_execution, recorded, delivery, clock):
    AlertRule.objects.create(enabled=False)
    end(make_execution, make_task(max_retry=0), ExecutionStatus.FAILED, clock)
    delivery.run_once(clock.advance(1))
    assert recorded.sent == [] and Notification.objects.count() == 0
    assert AlertEvent.objects.filter(processed_at__isnull=True).count() == 0


def test_an_executor_healthy_again_by_re_registering_closes_its_incident(make_executor, global_rule, recorded,
                                                                         delivery, clock):
    from executors.models import Executor

    executor = make_executor(name="worker-b")
    for _ in range(3):
        executor.refresh_from_db()
        record_check(executor, ok=False, now=clock.advance(30))
    delivery.run_once(clock.advance(1))
    Executor.objects.filter(pk=executor.pk).update(is_healthy=True, health_check_failures=0)  # as registration does
    delivery.run_once(clock.advance(10))
    delivery.run_once(clock.advance(1))
    assert [m.kind for m in recorded.sent] == ["alert", "recovery"]
    for _ in range(3):  # the next outage is news again, not a repeat of a stale incident
        executor.refresh_from_db()
        record_check(executor, ok=False, now=clock.advance(30))
    delivery.run_once(clock.advance(10))
    assert [m.kind for m in recorded.sent] == ["alert", "recovery", "alert"]


def test_a_success_costs_no_query_for_alerting_on_the_hot_path(make_task, make_execution, global_rule, clock,
                                                              monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from executions import services

    task = make_task()

    def queries_of_a_success() -> int:
        execution = make_execution(task=task, status=ExecutionStatus.RUNNING, start_time=clock.now)
        with CaptureQueriesContext(connection) as captured:
            finish(execution, ExecutionStatus.SUCCESS, now=clock.advance(1))
        return len(captured)

    queries_of_a_success()  # the process reads what is open and watched (once a second)
    with_alerts = queries_of_a_success()
    monkeypatch.setattr(services, "record_run_end", lambda *args, **kwargs: None)
    assert with_alerts == queries_of_a_success()


def test_a_failed_workflow_run_alerts_once_per_workflow_and_recovers(make_task, global_rule, recorded, delivery,
                                                                     clock):
    from django.utils import timezone

    from executions.models import TaskExecution
    from workflows.services import workflow_create, workflow_trigger

    task = make_task(max_retry=0, name="load")
    workflow = workflow_create(data={"name": "nightly etl"}, nodes=[{"name": "load", "task_id": task.pk}], edges=[],
                               now=timezone.now())

    def run_once(status):
        run = workflow_trigger(workflow_id=workflow.pk, parameters=None, now=timezone.now())
        node = TaskExecution.objects.get(workflow_run=run)
        finish(node, status, now=timezone.now())
        delivery.run_once(clock.advance(1))
        return run

    failed = run_once(ExecutionStatus.FAILED)
    run_once(ExecutionStatus.FAILED)  # a repeat, counted on the open incident
    workflow_messages = [m for m in recorded.sent if "workflow nightly etl" in m.title]
    [alert] = workflow_messages
    assert "workflow nightly etl failed" in alert.title and f"workflowrun/{failed.pk}/" in alert.body
    incident = Incident.objects.get(condition=Condition.WORKFLOW_FAILED, resolved_at__isnull=True)
    assert incident.subject == f"workflow:{workflow.pk}" and incident.count == 2
    run_once(ExecutionStatus.SUCCESS)
    assert [m.kind for m in recorded.sent if "workflow nightly etl" in m.title] == ["alert", "recovery"]
    assert not Incident.objects.filter(resolved_at__isnull=True).exists()  # the task's incident recovered too
