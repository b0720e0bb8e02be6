"""Alert history is kept as long as execution history: processed outbox events for a day (they are only
a hand-over), finished notifications and resolved incidents for EXECUTION_RETENTION_DAYS. Deleted in small
batches by primary key, as ``executions.retention`` does, so the purge never holds long locks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from alerts.choices import NotificationStatus
from alerts.models import AlertEvent, Incident, Notification
from executions.retention import retention_cutoff

EVENT_KEEP = timedelta(days=1)
FINISHED_NOTIFICATIONS = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.DIGESTED,
                          NotificationStatus.SUPPRESSED)


def purge_alert_history(now: datetime) -> int:
    """Returns how many rows went."""
    batch = settings.EXECUTION_PURGE_BATCH_SIZE
    deleted = _in_batches(AlertEvent.objects.filter(processed_at__lt=now - EVENT_KEEP), batch)
    cutoff = retention_cutoff(now)
    if cutoff is not None:
        deleted += _in_batches(Notification.objects.filter(status__in=FINISHED_NOTIFICATIONS, created_at__lt=cutoff),
                               batch)
        deleted += _in_batches(Incident.objects.filter(resolved_at__lt=cutoff), batch)
    return deleted


def _in_batches(queryset: QuerySet, batch: int) -> int:
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:batch]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted
