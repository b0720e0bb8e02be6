"""Firing the non-cron schedule types, priority under a burst, and max_instances, with ``now`` passed in."""

from datetime import timedelta

import pytest

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from scheduling.firing import fire_due
from tasks.services import task_create, task_pause, task_resume
from tests.scheduling.conftest import T0
from tests.scheduling.fakes import FakeExecutors, make_dispatcher


def statuses(task):
    return [e.status for e in TaskExecution.objects.filter(task=task).order_by("scheduled_time", "created_at")]


def test_interval_task_fires_every_n_seconds_from_its_start(db):
    task = task_create(data={"name": "every-90s", "schedule_type": "interval", "interval_seconds": 90}, now=T0)
    assert task.start_at == T0 and task.next_run_time == T0 + timedelta(seconds=90)
    for step in range(1, 4):
        fire_due(T0 + timedelta(seconds=90 * step))
    rows = TaskExecution.objects.filter(task=task).order_by("scheduled_time")
    times = list(rows.values_list("scheduled_time", flat=True))
    assert times == [T0 + timedelta(seconds=90 * step) for step in range(1, 4)]


def test_date_task_fires_once_then_shows_it_is_done(db):
    run_at = T0 + timedelta(hours=1)
    task = task_create(data={"name": "launch", "schedule_type": "date", "run_at": run_at}, now=T0)
    assert task.next_run_time == run_at
    fire_due(run_at)
    fire_due(run_at + timedelta(days=1))
    task.refresh_from_db()
    assert statuses(task) == [ExecutionStatus.PENDING]
    assert task.next_run_time is None and task.finished_at == run_at


def test_once_task_fires_as_soon_as_active_and_again_after_resume(db):
    task = task_create(data={"name": "now", "schedule_type": "once"}, now=T0)
    assert task.next_run_time == T0
    fire_due(T0 + timedelta(milliseconds=200))
    task.refresh_from_db()
    assert task.finished_at is not None and task.next_run_time is None
    task_pause(task_id=task.pk, now=T0 + timedelta(seconds=1))
    task_resume(task_id=task.pk, now=T0 + timedelta(seconds=2))
    fire_due(T0 + timedelta(seconds=2))
    assert len(statuses(task)) == 2


def test_max_instances_caps_parallel_runs_and_records_the_skip(db, make_task):
    task = make_task(max_instances=2)
    for second in range(3):
        fire_due(T0 + timedelta(seconds=second))
    rows = list(TaskExecution.objects.filter(task=task).order_by("scheduled_time"))
    assert [r.status for r in rows] == [ExecutionStatus.PENDING, ExecutionStatus.PENDING, ExecutionStatus.SKIPPED]
    assert "max_instances (2) reached" in rows[2].logs


@pytest.mark.django_db(transaction=True)
def test_higher_priority_dispatches_first_in_a_burst(make_task, make_executor, clock):
    low = [make_task(priority=0) for _ in range(5)]
    high = [make_task(priority=10) for _ in range(5)]
    executor = make_executor(tasks=[*low, *high])
    fire_due(T0)
    transport = FakeExecutors()
    dispatcher = make_dispatcher(clock, transport, workers=1)  # one worker: submission order is delivery order
    try:
        dispatcher.dispatch_pending(T0)
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.shutdown()
    order = [payload["task_id"] for _, payload in transport.calls]
    assert set(order[:5]) == {t.pk for t in high} and set(order[5:]) == {t.pk for t in low}
    assert executor.pk
