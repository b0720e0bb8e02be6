from django.db import models

from executors.choices import ExecutorStatus
from scheduler_project.ids import new_id


class Executor(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255)
    instance_id = models.CharField(max_length=255, unique=True)
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
