from django.db import models

from scheduler_project.ids import new_id


class SchedulerInstance(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    instance_id = models.CharField(max_length=255, unique=True)
    host = models.CharField(max_length=255)
    # The port the node listens on: its Prometheus /metrics, if it serves one; null when it listens on none
    # (a scheduler node is a database client, not a server).
    port = models.IntegerField(null=True, blank=True)
    is_leader = models.BooleanField(default=False)
    leader_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Doubles as the heartbeat: every node touches it each heartbeat interval.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "scheduler_instances"
        ordering = ["-is_leader", "instance_id"]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.host}:{self.port})" if self.port else f"{self.instance_id} ({self.host})"
