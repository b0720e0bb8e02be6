"""Retention: purge_executions deletes old final executions in batches and keeps everything else; the
purge_executions command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import QuerySet
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from executions.models import TaskExecution
from executions.retention import purge_executions, purge_expired

FINAL = ["success", "failed", "timeout", "skipped", "cancelled"]


@pytest.fixture
def history(make_task, make_execution):
    """Five old final runs, old pending/running runs, recent final runs, and an old failure with a retry
    still pending."""
    now = timezone.now()
    task = make_task()
    old = now - timedelta(days=100)
    rows = {
        "old_final": [make_execution(task=task, status=status, scheduled_time=old - timedelta(minutes=i))
                      for i, status in enumerate(FINAL)],
        "old_pending": make_execution(task=task, status="pending", scheduled_time=old - timedelta(hours=1)),
        "old_running": make_execution(task=task, status="running", scheduled_time=old - timedelta(hours=2),
                                      start_time=old),
        "recent": [make_execution(task=task, status=status, scheduled_time=now - timedelta(days=10, minutes=i))
                   for i, status in enumerate(FINAL)],
        "edge": make_execution(task=task, status="success", scheduled_time=now - timedelta(days=89, hours=23)),
    }
    failed = make_execution(task=task, status="failed", scheduled_time=old - timedelta(hours=3))
    rows["retry"] = make_execution(task=task, status="pending", scheduled_time=failed.scheduled_time,
                                   retry_count=1, retry_of=failed)
    rows["old_final"].append(failed)
    return {"now": now, "cutoff": now - timedelta(days=90), **rows}


def remaining_ids() -> set[str]:
    return set(TaskExecution.objects.values_list("id", flat=True))


def kept_ids(history) -> set[str]:
    return {history["old_pending"].pk, history["old_running"].pk, history["edge"].pk, history["retry"].pk,
            *(row.pk for row in history["recent"])}


def test_purge_deletes_only_old_final_executions(history):
    deleted = purge_executions(older_than=history["cutoff"], batch_size=1000)
    assert deleted == 6
    assert remaining_ids() == kept_ids(history)


def test_purge_keeps_a_run_scheduled_exactly_at_the_cutoff(history):
    purge_executions(older_than=history["edge"].scheduled_time, batch_size=10)
    assert history["edge"].pk in remaining_ids()


def test_purge_keeps_a_pending_retry_and_clears_its_link(history):
    purge_executions(older_than=history["cutoff"], batch_size=2)
    retry = TaskExecution.objects.get(pk=history["retry"].pk)
    assert (retry.status, retry.retry_of_id) == ("pending", None)


@pytest.mark.parametrize(("batch_size", "deletes"), [(1, 6), (2, 3), (4, 2), (6, 1), (1000, 1)])
def test_purge_works_in_batches_of_primary_keys(history, batch_size, deletes):
    with CaptureQueriesContext(connection) as queries:
        assert purge_executions(older_than=history["cutoff"], batch_size=batch_size) == 6
    statements = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DELETE")]
    assert len(statements) == deletes
    assert all(" IN (" in sql for sql in statements)  # by primary keys, never by a range scan


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_on_its_own(history, monkeypatch):
    # The second batch's delete fails: the first batch stays deleted, so it was committed by itself.
    real_delete = QuerySet.delete
    calls = []

    def failing_second_delete(self):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("connection lost mid-purge")
        return real_delete(self)

    monkeypatch.setattr(QuerySet, "delete", failing_second_delete)
    with pytest.raises(RuntimeError):
        purge_executions(older_than=history["cutoff"], batch_size=2)
    assert len(remaining_ids()) == 15 - 2


def test_purge_with_nothing_to_delete_returns_zero(history):
    assert purge_executions(older_than=history["now"] - timedelta(days=1000), batch_size=10) == 0
    assert len(remaining_ids()) == 15


def test_purge_refuses_a_batch_size_below_one(db):
    with pytest.raises(ValueError, match="batch_size"):
        purge_executions(older_than=timezone.now(), batch_size=0)


@override_settings(EXECUTION_RETENTION_DAYS=95, EXECUTION_PURGE_BATCH_SIZE=2)
def test_purge_expired_uses_the_settings(history):
    assert purge_expired(now=history["now"]) == 6


@override_settings(EXECUTION_RETENTION_DAYS=0)
def test_purge_expired_with_retention_off_deletes_nothing(history):
    assert purge_expired(now=history["now"]) == 0
    assert len(remaining_ids()) == 15


# --- the command ----------------------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("purge_executions", *args, stdout=out)
    return out.getvalue()


def test_command_deletes_and_says_how_many(history):
    output = run("--days", "90", "--batch-size", "2")
    assert output.startswith("Deleted 6 execution(s) scheduled before ")
    assert remaining_ids() == kept_ids(history)


def test_command_dry_run_only_counts(history):
    output = run("--days", "90", "--dry-run")
    assert output.startswith("Would delete 6 execution(s) scheduled before ")
    assert len(remaining_ids()) == 15


def test_command_with_more_days_keeps_more(history):
    assert run("--days", "200").startswith("Deleted 0 execution(s)")
    assert len(remaining_ids()) == 15


@override_settings(EXECUTION_RETENTION_DAYS=5)
def test_command_defaults_to_the_retention_setting(history):
    assert run().startswith("Deleted 12 execution(s)")  # the recent and edge finals are older than 5 days
    assert remaining_ids() == {history["old_pending"].pk, history["old_running"].pk, history["retry"].pk}


def test_command_with_zero_days_deletes_nothing(history):
    assert "Retention is off" in run("--days", "0")
    assert len(remaining_ids()) == 15


@pytest.mark.parametrize("args", [("--batch-size", "0"), ("--days", "-1"), ("--days", "soon")])
def test_command_rejects_bad_numbers(db, args):
    with pytest.raises(CommandError):
        run(*args)
