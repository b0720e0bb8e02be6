"""scheduler_project.inserts.insert_new: the leader's INSERT of fired runs, without bulk_create's per-value
compilation, must store exactly what bulk_create stores and fail the same way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from executions.models import TaskExecution
from scheduler_project.inserts import insert_new


def _runs(task, scheduled, **extra):
    return [TaskExecution(task=task, scheduled_time=scheduled + timedelta(seconds=i), status="pending",
                          trigger_type="scheduled", parameters={"n": i, "text": "é ✓"}, logs=f"line {i}",
                          dispatch_after=scheduled, **extra) for i in range(3)]


def _stored(ids):
    fields = [f.name for f in TaskExecution._meta.concrete_fields if f.name not in ("id", "created_at")]
    return [model_to_dict(TaskExecution.objects.get(pk=pk), fields=fields) for pk in ids]


def test_it_stores_what_bulk_create_stores(make_task):
    task = make_task()
    scheduled = timezone.now().replace(microsecond=123456)
    ours, theirs = _runs(task, scheduled), _runs(task, scheduled, retry_count=1)
    insert_new(ours)
    TaskExecution.objects.bulk_create(theirs)
    stored_ours, stored_theirs = _stored([r.pk for r in ours]), _stored([r.pk for r in theirs])
    for row in stored_theirs:
        row["retry_count"] = 0
    assert stored_ours == stored_theirs
    assert stored_ours[1]["parameters"] == {"n": 1, "text": "é ✓"}
    assert stored_ours[0]["scheduled_time"] == scheduled
    created = TaskExecution.objects.get(pk=ours[0].pk).created_at
    assert created is not None and abs(created - timezone.now()) < timedelta(minutes=1)
    assert all(not run._state.adding for run in ours)


def test_a_duplicate_fire_is_refused_whole_as_by_the_orm(make_task):
    task = make_task()
    scheduled = timezone.now()
    insert_new(_runs(task, scheduled))
    again = _runs(task, scheduled)  # the same fire keys: (task, scheduled_time, trigger_type, retry_count, ...)
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_new(again)
    assert TaskExecution.objects.filter(task=task).count() == 3


def test_more_rows_than_one_statement_takes_go_in_several(make_task, monkeypatch):
    task = make_task()
    scheduled = timezone.now()
    runs = [TaskExecution(task=task, scheduled_time=scheduled + timedelta(seconds=i), status="pending",
                          trigger_type="scheduled", dispatch_after=scheduled) for i in range(7)]
    from django.db import connection

    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 3)
    insert_new(runs)
    assert TaskExecution.objects.filter(task=task).count() == 7


def test_values_repeated_in_a_column_or_equal_across_types_are_each_stored_as_given(make_task):
    """A value is converted once per column (a memo): 1 and True are equal in Python yet distinct JSON, and one
    instant in two time zones is still one instant."""
    task = make_task()
    instant = timezone.now().replace(microsecond=0)
    elsewhere = instant.astimezone(timezone.get_fixed_timezone(120))
    runs = [TaskExecution(task=task, scheduled_time=when, status="pending", parameters=parameters,
                          dispatch_after=instant)
            for when, parameters in ((instant, 1), (elsewhere + timedelta(seconds=1), True), (instant, {"a": 1}),
                                     (elsewhere + timedelta(seconds=2), 1.0), (instant + timedelta(seconds=3), "1"))]
    with pytest.raises(IntegrityError), transaction.atomic():  # two fires of one time: refused whole
        insert_new(runs)
    runs = [run for index, run in enumerate(runs) if index != 2]
    for run in runs:
        run._state.adding = True
    insert_new(runs)
    stored = {run.pk: TaskExecution.objects.get(pk=run.pk) for run in runs}
    assert [type(stored[run.pk].parameters) for run in runs] == [int, bool, float, str]
    assert [stored[run.pk].scheduled_time for run in runs] == [
        instant, instant + timedelta(seconds=1), instant + timedelta(seconds=2), instant + timedelta(seconds=3)]
