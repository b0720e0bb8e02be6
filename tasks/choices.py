from django.db import models

from core.policy import ExecutionMode as Mode
from core.policy import MisfirePolicy as Misfire


class TaskStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    DELETED = "deleted", "Deleted"


class ExecutionMode(models.TextChoices):
    PARALLEL = Mode.PARALLEL, "Parallel"
    SEQUENTIAL = Mode.SEQUENTIAL, "Sequential"
    SKIP = Mode.SKIP, "Skip"
    REPLACE = Mode.REPLACE, "Replace"
    QUEUE = Mode.QUEUE, "Queue"


class LoadBalanceStrategy(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin", "Weighted round robin"
    RANDOM = "random", "Random"
    STICKY = "sticky", "Sticky"
    LEAST_LOADED = "least_loaded", "Least loaded"
    BROADCAST = "broadcast", "Broadcast (one shard per executor)"


class MisfirePolicy(models.TextChoices):
    FIRE_ONCE = Misfire.FIRE_ONCE, "Fire once for the missed window"
    FIRE_ALL = Misfire.FIRE_ALL, "Fire every missed time (bounded)"
    SKIP = Misfire.SKIP, "Skip missed times (recorded as skipped)"


class ScheduleType(models.TextChoices):
    CRON = "cron", "Cron expression"
    INTERVAL = "interval", "Every N seconds"
    DATE = "date", "Once at a date and time"
    ONCE = "once", "Once, as soon as active"


ONE_SHOT_TYPES = frozenset({ScheduleType.DATE, ScheduleType.ONCE})
