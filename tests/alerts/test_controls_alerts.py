"""The controls (#20) and the alert outbox (#18): a fire a blackout calendar skips is skipped on purpose (no
event), one beyond a queue's bound is news; a broadcast run alerts as one run (its own end), never per shard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import AlertEvent
from core.alerting import Condition
from core.states import ExecutionStatus
from executions.models import TaskExecution
from executions.services import apply_callback, lose_run
from scheduling.firing import fire_task
from tasks.models import BlackoutCalendar

pytestmark = pytest.mark.django_db

DUE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def events(condition: str) -> list[AlertEvent]:
    return list(AlertEvent.objects.filter(condition=condition).order_by("occurred_at"))


def test_a_fire_skipped_in_a_blackout_is_not_alerted_one_beyond_the_queue_bound_is(make_task, make_execution):
    blacked_out = make_task(cron_expression="0 * * * * *", next_run_time=DUE)
    blacked_out.calendars.add(BlackoutCalendar.objects.create(name="new year", entries=["2030-01-01"]))
    queued = make_task(cron_expression="0 * * * * *", next_run_time=DUE, execution_mode="queue", max_instances=1)
    make_execution(task=queued, status=ExecutionStatus.RUNNING, start_time=DUE)

    assert fire_task(blacked_out, DUE) == 1 and fire_task(queued, DUE) == 1

    skipped = TaskExecution.objects.filter(scheduled_time=DUE, status=ExecutionStatus.SKIPPED)
    assert {row.task_id for row in skipped} == {blacked_out.pk, queued.pk}
    [event] = events(Condition.FIRE_SKIPPED)
    assert event.task_id == queued.pk and "max_instances (1) reached" in event.details["cause"]


def broadcast_run(make_task, make_execution, shards: int):
    task = make_task(load_balance_strategy="broadcast", max_retry=0)
    parent = make_execution(task=task, scheduled_time=DUE, status=ExecutionStatus.RUNNING, start_time=DUE,
                            shard_total=shards)
    return parent, [make_execution(task=task, scheduled_time=DUE, status=ExecutionStatus.RUNNING, start_time=DUE,
                                   shard=number, shard_total=shards, attempt=1)
                    for number in range(1, shards + 1)]


def test_a_broadcast_run_alerts_once_for_its_own_end_not_per_shard(make_task, make_execution):
    parent, (failing, lost, fine) = broadcast_run(make_task, make_execution, 3)

    apply_callback(execution_id=failing.pk, status="failed", result=None, logs=None, end_time=None, now=DUE)
    assert lose_run(TaskExecution.objects.get(pk=lost.pk), now=DUE, why="its executor was killed")
    assert events(Condition.RUN_FAILED) == []
    apply_callback(execution_id=fine.pk, status="success", result=None, logs=None, end_time=None, now=DUE)

    [event] = events(Condition.RUN_FAILED)
    assert (event.execution_id, event.details["status"]) == (parent.pk, ExecutionStatus.FAILED)
    parent.refresh_from_db()
    assert "not succeeded: shard_index 0, 1" in parent.logs


def test_a_late_success_of_a_lost_shard_is_recorded_through_its_broadcast_run(make_task, make_execution):
    parent, (lost, fine) = broadcast_run(make_task, make_execution, 2)
    TaskExecution.objects.filter(pk=lost.pk).update(deadline=DUE + timedelta(minutes=5))
    assert lose_run(TaskExecution.objects.get(pk=lost.pk), now=DUE, why="its lease ran out")
    apply_callback(execution_id=lost.pk, status="success", result=None, logs=None,
                   end_time=DUE + timedelta(seconds=1), now=DUE + timedelta(seconds=2))
    apply_callback(execution_id=fine.pk, status="success", result=None, logs=None, end_time=None, now=DUE)

    parent.refresh_from_db()
    assert parent.status == ExecutionStatus.SUCCESS
    assert events(Condition.RUN_FAILED) == [], "no shard alerted, and the run succeeded"
