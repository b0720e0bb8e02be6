"""Retention: old execution history is deleted in small batches.

Only final executions go (never pending or running ones, whatever their age). Each batch selects at most
``batch_size`` primary keys and deletes by those keys in its own short transaction, so a purge of millions
of rows never holds a long lock on ``task_executions`` while the scheduler writes to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from executions.choices import TERMINAL_STATUSES
from executions.models import TaskExecution

MAX_RETENTION_DAYS = 365_000


def purgeable(older_than: datetime) -> QuerySet[TaskExecution]:
    """Final executions scheduled before ``older_than``."""
    return TaskExecution.objects.filter(status__in=TERMINAL_STATUSES, scheduled_time__lt=older_than)


def purge_executions(*, older_than: datetime, batch_size: int) -> int:
    """Delete final executions scheduled before ``older_than``, ``batch_size`` at a time; return how many.

    Retries pointing at a deleted run keep existing, with ``retry_of`` cleared (the foreign key's SET_NULL).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    deleted = 0
    while True:
        with transaction.atomic():
            # Oldest first along the scheduled_time index; the batch is then addressed by primary key.
            ids = list(purgeable(older_than).order_by("scheduled_time", "id").values_list("id", flat=True)[:batch_size])
            if not ids:
                return deleted
            # only("id"): the deletion collector loads the rows; logs can be a megabyte each.
            count, _ = purgeable(older_than).filter(id__in=ids).only("id").delete()
        deleted += count
        if len(ids) < batch_size:
            return deleted


def retention_cutoff(now: datetime, days: int | None = None) -> datetime | None:
    """Executions scheduled before this are due for purging; None when retention is off (0 days)."""
    days = settings.EXECUTION_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    # Nothing is a thousand years old; the cap keeps an absurd setting from overflowing the date.
    return now - timedelta(days=min(days, MAX_RETENTION_DAYS))


def purge_expired(*, now: datetime) -> int:
    """The daily purge with the configured retention and batch size; 0 when retention is off."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0
    return purge_executions(older_than=cutoff, batch_size=settings.EXECUTION_PURGE_BATCH_SIZE)
