from django.db import models
from django.utils.functional import cached_property

from executions.choices import ExecutionStatus, TriggerType
from scheduler_project.ids import new_id


class TaskExecution(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="executions")
    executor = models.ForeignKey(
        "executors.Executor", on_delete=models.SET_NULL, null=True, blank=True, related_name="executions"
    )
    scheduled_time = models.DateTimeField()
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING)
    result = models.JSONField(null=True, blank=True)
    logs = models.TextField(blank=True, default="")
    retry_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices, default=TriggerType.SCHEDULED)
    # The parameters this run was dispatched with: the task's defaults merged with a trigger's overrides.
    parameters = models.JSONField(default=dict, blank=True)
    # Not dispatched before this instant (retry backoff); pending rows are dispatched in this order.
    dispatch_after = models.DateTimeField(null=True, blank=True)
    # When a running execution times out: start_time + the task's timeout at dispatch time.
    deadline = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    # Live progress reported by the executor while the run is in flight.
    progress_percent = models.FloatField(null=True, blank=True)
    progress_step = models.CharField(max_length=255, blank=True, default="")
    progress_updated_at = models.DateTimeField(null=True, blank=True)
    # The lease protocol (core.leases): every dispatch is a new attempt (fencing number); the executor must
    # refuse it after accept_by; once accepted it renews the lease, and a run whose lease ran out is lost.
    attempt = models.PositiveIntegerField(default=0)
    accept_by = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Ended by the scheduler's own verdict (timeout, lost) rather than by its executor's word or an operator:
    # a result the executor finished within the deadline may still be applied (a late result).
    ended_by_scheduler = models.BooleanField(default=False)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    # A workflow node's run (workflows/): the run and the node it belongs to, kept by its retries.
    workflow_run = models.ForeignKey("workflows.WorkflowRun", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="node_executions")
    workflow_node = models.ForeignKey("workflows.WorkflowNode", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="executions")
    # "<run id>:<round>:<node name>" for a node's run, "" otherwise: part of the unique fire key, so a node
    # starts at most once per round of its run (and a task in two nodes, or two workflows, never collides).
    node_key = models.CharField(max_length=120, blank=True, default="")
    # Broadcast: one fire is a logical run (``shard_total`` set, ``shard`` 0, never dispatched itself) and one
    # child per eligible executor (``shard`` k = shard index k-1 of ``shard_total``), pinned to its executor.
    # ``shard`` is in the fire's unique key: the run and its shards share task, scheduled time, trigger and
    # node_key (``fire_key``), which is how each finds the other (``parent_id``, ``shards_of``) without a parent
    # column: every column costs each fire's INSERT. A broadcast workflow node's shards carry its node_key
    # but not its workflow_run: to the workflow the node is its one broadcast run.
    shard = models.PositiveSmallIntegerField(default=0)
    shard_total = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "task_executions"
        ordering = ["-scheduled_time", "-created_at"]
        indexes = [
            # Every status change rewrites each index holding status, so none is kept that a longer one
            # starts with: (status) and (task, status) went in migration 0006 (the claim of a 1,000-run
            # burst is one such change per run, on the dispatch path). Nor one a longer one starts with
            # at all: (scheduled_time) went in migration 0012, idx_exec_time_cover serves what it did.
            models.Index(fields=["status", "dispatch_after"], name="idx_status_dispatch_after"),
            models.Index(fields=["status", "deadline"], name="idx_status_deadline"),
            models.Index(fields=["status", "lease_until"], name="idx_status_lease_until"),
            # An executor's runs by status, and over a time window (the console's executors page groups the
            # last 24 h of a page of executors on it, from the index alone: migration 0009).
            models.Index(fields=["executor", "status", "scheduled_time"], name="idx_executor_status_time"),
            # History reads over millions of rows (bench workload 5; figures in migration 0004).
            models.Index(fields=["task", "status", "scheduled_time"], name="idx_exec_task_status_time"),
            models.Index(fields=["task", "scheduled_time", "status", "duration_ms"], name="idx_exec_task_time_cover"),
            models.Index(fields=["status", "scheduled_time"], name="idx_exec_status_time"),
            # Stats of every task over a time window (migration 0005).
            models.Index(fields=["scheduled_time", "status", "duration_ms"], name="idx_exec_time_cover"),
        ]
        constraints = [
            # Exactly-once firing: two leaders in a split brain cannot both insert the same fire (or the
            # same retry of it, or the same broadcast shard, or the same workflow node's start in a round);
            # the loser's INSERT fails on this key.
            models.UniqueConstraint(
                fields=["task", "scheduled_time", "trigger_type", "retry_count", "shard", "node_key"],
                name="uk_task_fire_shard",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}@{self.scheduled_time:%Y-%m-%dT%H:%M:%S} #{self.retry_count} {self.status}"

    def log_extra(self) -> dict:
        """Identifiers the engine attaches to every log line about this run (structured logs)."""
        return {"execution_id": self.pk, "task_id": self.task_id}

    @property
    def shard_index(self) -> int | None:
        """0-based index of a broadcast shard; None for any other run."""
        return self.shard - 1 if self.shard else None

    @property
    def is_broadcast_parent(self) -> bool:
        return self.shard_total is not None and not self.shard

    def fire_key(self) -> dict:
        """The fire this run belongs to: a broadcast run and its shards (and their retries) share it. A workflow
        node's runs have the node's key in it, so a node's shards never mix with its task's own fire at the
        same time, nor with another node's."""
        return {"task_id": self.task_id, "scheduled_time": self.scheduled_time, "trigger_type": self.trigger_type,
                "node_key": self.node_key}

    @cached_property
    def parent_id(self) -> str | None:
        """A shard's broadcast run (one indexed lookup on the fire key); None for any other run."""
        if not self.shard:
            return None
        return (TaskExecution.objects.filter(**self.fire_key(), retry_count=0, shard=0)
                .values_list("pk", flat=True).first())
