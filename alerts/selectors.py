"""Reads of alert state for the console's dashboard."""

from __future__ import annotations

from alerts.choices import NotificationStatus
from alerts.models import Incident, Notification


def alert_counts() -> dict[str, int]:
    """Open incidents, and notifications that gave up (failed for good): the dashboard's alerts card."""
    return {"open": Incident.objects.filter(resolved_at__isnull=True).count(),
            "undelivered": Notification.objects.filter(status=NotificationStatus.FAILED).count()}
