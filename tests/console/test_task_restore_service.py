"""tasks.services.task_restore: a soft-deleted task comes back paused; nothing else can be restored."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scheduler_project.errors import DomainError, ErrorCode
from tasks.services import task_delete, task_restore


def test_restore_brings_a_deleted_task_back_paused(make_task):
    task = make_task()
    task_delete(task_id=task.pk, now=timezone.now())
    assert task_restore(task_id=task.pk, now=timezone.now()) == ("deleted", "paused")
    task.refresh_from_db()
    assert (task.status, task.next_run_time) == ("paused", None)


@pytest.mark.parametrize("status", ["active", "paused"])
def test_only_deleted_tasks_can_be_restored(make_task, status):
    task = make_task(status=status)
    with pytest.raises(DomainError) as refused:
        task_restore(task_id=task.pk, now=timezone.now())
    assert refused.value.code == ErrorCode.TASK_STATE_FORBIDS


def test_restoring_an_unknown_task_is_not_found(db):
    with pytest.raises(DomainError) as refused:
        task_restore(task_id="nope", now=timezone.now())
    assert refused.value.code == ErrorCode.TASK_NOT_FOUND
