"""finish(): the final status and the retry it owes commit together or not at all."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import OperationalError
from django.utils import timezone

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executions.services import DEADLOCK_ATTEMPTS, finish, is_deadlock, retried_on_deadlock


class NodeDied(Exception):
    """Stands for the process dying between the status change and the retry insert."""


def test_a_failure_while_scheduling_the_retry_leaves_the_run_unfinished(make_task, make_execution, monkeypatch):
    task = make_task(max_retry=2)
    execution = make_execution(task=task, status=ExecutionStatus.RUNNING)

    def die(*args, **kwargs):
        raise NodeDied

    monkeypatch.setattr("executions.services.schedule_retry", die)
    with pytest.raises(NodeDied):
        finish(execution, ExecutionStatus.FAILED, now=timezone.now())
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.RUNNING  # still active: the sweep or a callback will end it
    assert TaskExecution.objects.filter(task=task).count() == 1


def test_a_failed_run_with_retries_left_gets_its_retry_in_the_same_call(make_task, make_execution):
    task = make_task(max_retry=1)
    execution = make_execution(task=task, status=ExecutionStatus.RUNNING)
    assert finish(execution, ExecutionStatus.FAILED, now=timezone.now())
    retry = TaskExecution.objects.get(retry_of=execution)
    assert retry.status == ExecutionStatus.PENDING and retry.retry_count == 1


def failing(error: Exception, times: int) -> tuple[Callable[[], str], list[int]]:
    """A transaction body that raises ``error`` ``times`` times, then succeeds; and its call count."""
    calls = [0]

    def body() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return "applied"

    return body, calls


def mysql_deadlock() -> OperationalError:
    return OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_runs_again_outside_any_transaction():
    body, calls = failing(mysql_deadlock(), times=2)
    assert retried_on_deadlock(body)() == "applied" and calls == [3]


@pytest.mark.django_db(transaction=True)
def test_deadlocks_past_the_limit_and_other_errors_propagate():
    body, calls = failing(mysql_deadlock(), times=DEADLOCK_ATTEMPTS)
    with pytest.raises(OperationalError):
        retried_on_deadlock(body)()
    assert calls == [DEADLOCK_ATTEMPTS]
    body, calls = failing(OperationalError(2006, "MySQL server has gone away"), times=1)
    with pytest.raises(OperationalError):
        retried_on_deadlock(body)()
    assert calls == [1]


def test_inside_an_outer_transaction_a_deadlock_is_not_retried(db):
    body, calls = failing(mysql_deadlock(), times=1)
    with pytest.raises(OperationalError):
        retried_on_deadlock(body)()
    assert calls == [1]


def test_postgresql_deadlocks_are_recognised_by_sqlstate():
    error = OperationalError("deadlock detected")
    error.__cause__ = type("Cause", (Exception,), {"sqlstate": "40P01"})()
    assert is_deadlock(error) and not is_deadlock(OperationalError("connection refused"))
