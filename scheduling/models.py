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
    # The leadership term this node was elected for (LeaderTerm); kept after it steps down.
    leader_term = models.BigIntegerField(null=True, blank=True)
    # The database's clock minus this node's, as last measured (null: never, or SQLite: no server clock).
    clock_offset_seconds = models.FloatField(null=True, blank=True)
    # Why this node refuses to lead right now (its clock is too far off); empty when it may lead.
    leadership_refusal = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Doubles as the heartbeat: every node touches it each heartbeat interval.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "scheduler_instances"
        ordering = ["-is_leader", "instance_id"]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.host}:{self.port})" if self.port else f"{self.instance_id} ({self.host})"


class LeaderTerm(models.Model):
    """The fencing number of one leader lock: the current leadership term. Each newly elected leader
    increments it while holding the lock, and checks it in the same transaction as each of its writes, so
    the writes of a leader deposed meanwhile are refused by the database (scheduling.leader.Fence)."""

    name = models.CharField(primary_key=True, max_length=64)  # the leader lock's name
    term = models.BigIntegerField(default=0)
    holder = models.CharField(max_length=255, blank=True, default="")  # the elected node's instance_id
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "scheduler_leader_terms"

    def __str__(self) -> str:
        return f"{self.name}: term {self.term} ({self.holder})"
