from django.db import models

from executors.choices import ExecutorStatus
from scheduler_project.ids import new_id
from scheduler_project.text import refuse_control_characters
from scheduler_sdk.signing import new_secret


class Executor(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, validators=[refuse_control_characters])
    instance_id = models.CharField(max_length=255, unique=True, validators=[refuse_control_characters])
    base_url = models.CharField(max_length=500)
    health_check_url = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=ExecutorStatus.choices, default=ExecutorStatus.ONLINE)
    status_reason = models.CharField(max_length=500, blank=True, default="")
    is_healthy = models.BooleanField(default=True)
    last_health_check = models.DateTimeField(null=True, blank=True)
    health_check_failures = models.IntegerField(default=0)
    # Consecutive successful checks while unhealthy; recovery needs a run of them (spec 002 §4.2.2).
    health_check_successes = models.IntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    # Labels a task can target (``Task.executor_labels``), e.g. {"region": "eu"}: strings to strings.
    labels = models.JSONField(default=dict, blank=True)
    # The most runs one POST {base_url}/execute/batch may carry (declared when it registers); 0: it takes one
    # run per POST /execute. A batch carries runs due together in one signed request (scheduling.delivery).
    execute_batch_limit = models.PositiveIntegerField(default=0)
    # Signs every message between the scheduler and this executor (scheduler_sdk.signing). Handed to the
    # executor in its registration response only; never listed, logged or shown in full.
    secret = models.CharField(max_length=128, default=new_secret, editable=False)
    # The secret before an admin rotated it, until the executor proves it (a registration signed with it)
    # and so receives the new one; empty otherwise. Never accepted for anything else.
    previous_secret = models.CharField(max_length=128, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "executors"
        ordering = ["name", "instance_id"]
        indexes = [
            models.Index(fields=["status", "is_healthy"], name="idx_status_healthy"),
            models.Index(fields=["name", "instance_id"], name="idx_name_instance"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.instance_id})"

    @property
    def is_eligible(self) -> bool:
        """Whether dispatches may go here: online and healthy (spec 002 §4.2.2-4.2.3)."""
        return self.status == ExecutorStatus.ONLINE and self.is_healthy

    def endpoint(self, path: str) -> str:
        """The URL of one of its endpoints (``/execute``, ``/stop``, ...)."""
        return self.base_url.rstrip("/") + path

    @property
    def takes_batches(self) -> bool:
        return self.execute_batch_limit > 1


class SeenNonce(models.Model):
    """A nonce of a signed message from an executor, kept while a replay of it could still look fresh.

    The unique constraint is the replay check, so it holds across scheduler processes; rows older than
    ``NONCE_TTL_SECONDS`` are purged every minute by the leader (``scheduling.housekeeping``).
    """

    executor = models.ForeignKey(Executor, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=128)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "executor_nonces"
        constraints = [models.UniqueConstraint(fields=["executor", "nonce"], name="uniq_executor_nonce")]

    def __str__(self) -> str:
        return f"nonce of {self.executor_id} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"


class RevokedInstance(models.Model):
    """An instance id an admin revoked or deleted: only an admin registers it again (which lifts this).

    Kept by instance id rather than on the executor row so that deleting an executor sticks too: without it
    anyone holding the shared registration key would simply create it again.
    """

    instance_id = models.CharField(max_length=255, unique=True)
    reason = models.CharField(max_length=16, choices=[("revoked", "Revoked"), ("deleted", "Deleted")])
    revoked_at = models.DateTimeField()

    class Meta:
        db_table = "executor_revocations"
        ordering = ["-revoked_at"]
        verbose_name = "revoked executor instance"

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.reason})"
