from django.db import models

from alerts import crypto
from alerts.choices import ConditionChoice, FailureNotice, NotificationKind, NotificationStatus
from scheduler_project.ids import new_id
from scheduler_sdk.signing import new_secret

GLOBAL_RULE_KEY = "global"


class Channel(models.Model):
    """Where notifications go: an Apprise URL (email, Slack, Teams, ...), our signed webhook or the log.

    The URL usually holds a credential (a Slack token, an SMTP password): it is stored encrypted with a key
    derived from SECRET_KEY and shown only masked (``masked_url``) once saved.
    """

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, unique=True)
    url_encrypted = models.TextField(editable=False)
    # Signs our own webhook's requests (alerts.channels.SignedWebhook) as the executor channel signs its
    # messages; receivers verify it with this secret.
    signing_secret = models.CharField(max_length=128, default=new_secret, editable=False)
    enabled = models.BooleanField(default=True)
    mute_until = models.DateTimeField(null=True, blank=True)
    # At most rate_limit notifications per rate_window_seconds; what is held back goes out in one digest.
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_window_seconds = models.PositiveIntegerField(default=3600)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_channels"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return crypto.decrypt(self.url_encrypted)

    @url.setter
    def url(self, value: str) -> None:
        self.url_encrypted = crypto.encrypt(value)

    @property
    def masked_url(self) -> str:
        return crypto.mask_url(self.url)


class AlertRule(models.Model):
    """What is worth a notification. The global rule (``key`` "global") applies to every task without a
    rule of its own; a task's rule replaces it whole for that task. The cluster settings (executors, leader,
    nodes) are read from the global rule only."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    # "global", or "task:<task id>": unique, so there is one global rule and one override per task.
    key = models.CharField(max_length=80, unique=True, editable=False)
    task = models.OneToOneField("tasks.Task", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="alert_rule")
    enabled = models.BooleanField(default=True)
    on_failure = models.CharField(max_length=8, choices=FailureNotice.choices, default=FailureNotice.FINAL)
    consecutive_failures = models.PositiveIntegerField(null=True, blank=True)
    on_skip = models.BooleanField(default=True)
    on_recovery = models.BooleanField(default=True)
    # k: a successful run longer than k× or shorter than 1/k× the median of its recent runs.
    duration_factor = models.FloatField(null=True, blank=True)
    # "22:00-07:00, 12:00-13:00" in the task's time zone (UTC for the global rule's cluster alerts).
    silence_windows = models.CharField(max_length=255, blank=True, default="")
    mute_until = models.DateTimeField(null=True, blank=True)
    # Empty: every enabled channel.
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    on_executor_unhealthy = models.BooleanField(default=True)
    no_leader_seconds = models.PositiveIntegerField(null=True, blank=True, default=60)
    on_node_stale = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_rules"
        ordering = ["key"]

    def __str__(self) -> str:
        return "global default" if self.task_id is None else f"task {self.task}"

    def save(self, *args, **kwargs):
        self.key = GLOBAL_RULE_KEY if self.task_id is None else f"task:{self.task_id}"
        super().save(*args, **kwargs)


class Incident(models.Model):
    """One per (subject, condition) while open: repeats are counted here, not sent again."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    condition = models.CharField(max_length=32, choices=ConditionChoice.choices)
    # "task:<id>", "executor:<id>", "node:<instance id>", "workflow:<id>" or "cluster".
    subject = models.CharField(max_length=300)
    # subject|condition while open, NULL once resolved: the unique key that keeps one incident open.
    open_key = models.CharField(max_length=340, null=True, blank=True, unique=True, editable=False)
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    executor = models.ForeignKey("executors.Executor", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    last_execution = models.ForeignKey("executions.TaskExecution", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    summary = models.CharField(max_length=500)
    count = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_incidents"
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["resolved_at", "opened_at"], name="idx_incident_open")]

    def __str__(self) -> str:
        return f"{self.get_condition_display()}: {self.summary}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class AlertEvent(models.Model):
    """The outbox: one row per alert-worthy change, written in the transaction that made the change, so an
    event exists exactly when its change committed. The leader turns events into incidents and
    notifications (``alerts.delivery``) and marks them processed by compare-and-set."""

    id = models.BigAutoField(primary_key=True)
    condition = models.CharField(max_length=32, choices=ConditionChoice.choices)
    # False: the subject's recovery signal (a success, a passed health check, a fresh heartbeat).
    firing = models.BooleanField(default=True)
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    executor = models.ForeignKey("executors.Executor", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    execution = models.ForeignKey("executions.TaskExecution", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    node = models.CharField(max_length=255, blank=True, default="")
    occurred_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_events"
        ordering = ["id"]
        indexes = [models.Index(fields=["processed_at", "id"], name="idx_alert_event_todo")]

    def __str__(self) -> str:
        return f"{self.condition}{'' if self.firing else ' recovered'} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Notification(models.Model):
    """One message to one channel, with its delivery state: claimed by compare-and-set, retried with
    backoff, shown in the console with its attempts and last error."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="notifications")
    digest = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="held")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices, default=NotificationKind.ALERT)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    title = models.CharField(max_length=255)
    body = models.TextField()
    # When the change that caused it happened (the event's time): alert latency is sent_at minus this.
    event_at = models.DateTimeField()
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_notifications"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="idx_notification_due"),
            models.Index(fields=["channel", "status", "sent_at"], name="idx_notification_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.title} -> {self.channel_id} ({self.status})"
