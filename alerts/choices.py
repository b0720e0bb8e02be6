from django.db import models

from core.alerting import Condition


class ConditionChoice(models.TextChoices):
    RUN_FAILED = Condition.RUN_FAILED, "Run failed, timed out or lost"
    CONSECUTIVE_FAILURES = Condition.CONSECUTIVE_FAILURES, "Consecutive failures"
    FIRE_SKIPPED = Condition.FIRE_SKIPPED, "Fire missed or skipped"
    DURATION_ANOMALY = Condition.DURATION_ANOMALY, "Duration anomaly"
    EXECUTOR_UNHEALTHY = Condition.EXECUTOR_UNHEALTHY, "Executor unhealthy"
    NO_LEADER = Condition.NO_LEADER, "No leader"
    NODE_STALE = Condition.NODE_STALE, "Scheduler node heartbeat stale"
    WORKFLOW_FAILED = Condition.WORKFLOW_FAILED, "Workflow run failed"


class FailureNotice(models.TextChoices):
    """When a failed, timed-out or lost run is worth a notification."""

    OFF = "off", "Never"
    FINAL = "final", "After the last retry"
    EACH = "each", "On each attempt"


class NotificationKind(models.TextChoices):
    ALERT = "alert", "Alert"
    RECOVERY = "recovery", "Recovery"
    DIGEST = "digest", "Digest"
    TEST = "test", "Test"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting to be sent (new, or a failed attempt waiting for its retry)
    SENDING = "sending", "Sending"  # claimed by the leader (compare-and-set) and being sent
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # gave up after the last attempt
    HELD = "held", "Held (rate limit)"  # over the channel's rate limit: goes out in the next digest
    DIGESTED = "digested", "Sent in a digest"
    SUPPRESSED = "suppressed", "Suppressed"  # silence window or mute: recorded, not sent
