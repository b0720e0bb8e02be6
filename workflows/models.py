from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from core.schedules import Schedule, build_schedule
from executions.choices import TriggerType
from scheduler_project.ids import new_id
from tasks.choices import MisfirePolicy, ScheduleType
from workflows.choices import EdgeCondition, OverlapPolicy, WorkflowRunStatus, WorkflowStatus

MAX_NODES = 500
NODE_NAME = RegexValidator(r"^[A-Za-z0-9_.-]{1,64}\Z", "letters, digits, '_', '.' and '-', at most 64")
# "" schedules nothing: the workflow runs only when triggered.
SCHEDULE_CHOICES = [("", "By hand only"), *ScheduleType.choices]


class Workflow(models.Model):
    """A named DAG of tasks with a schedule of its own. Its nodes and edges are copied into each run when
    it starts, so editing a workflow never changes a run in progress."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.ACTIVE)
    schedule_type = models.CharField(max_length=16, choices=SCHEDULE_CHOICES, blank=True, default="")
    cron_expression = models.CharField(max_length=100, blank=True, default="")
    interval_seconds = models.IntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    start_at = models.DateTimeField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    misfire_policy = models.CharField(max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.FIRE_ONCE)
    # Between runs of this workflow, as a task's execution mode between its runs.
    overlap_policy = models.CharField(max_length=16, choices=OverlapPolicy.choices, default=OverlapPolicy.PARALLEL)
    # Fan-out: at most this many nodes of one run pending or running at once (null: no limit).
    max_parallel_nodes = models.IntegerField(null=True, blank=True,
                                             validators=[MinValueValidator(1), MaxValueValidator(MAX_NODES)])
    # Every node's parameters start from these (then the node's own, then a trigger's).
    parameters = models.JSONField(default=dict, blank=True)
    # The due-time heap of workflows, read each tick like tasks.next_run_time.
    next_run_time = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "workflows"
        ordering = ["name"]
        indexes = [models.Index(fields=["status", "next_run_time"], name="idx_wf_status_next_run")]

    def __str__(self) -> str:
        return self.name

    def log_extra(self) -> dict:
        return {"workflow_id": self.pk}

    def schedule(self) -> Schedule:
        return build_schedule(
            schedule_type=self.schedule_type, cron_expression=self.cron_expression, timezone=self.timezone,
            interval_seconds=self.interval_seconds, start_at=self.start_at or self.created_at, run_at=self.run_at,
            once_at=self.next_run_time,
        )


class WorkflowNode(models.Model):
    """One step of a workflow: a task (a task may be a node of several workflows, or twice in one)."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=64, validators=[NODE_NAME])
    # PROTECT: tasks are only soft-deleted; a hard delete must not silently reshape a workflow.
    task = models.ForeignKey("tasks.Task", on_delete=models.PROTECT, related_name="workflow_nodes")
    parameters = models.JSONField(default=dict, blank=True)
    position = models.IntegerField(default=0)

    class Meta:
        db_table = "workflow_nodes"
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="uk_workflow_node_name")]

    def __str__(self) -> str:
        return self.name


class WorkflowEdge(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="edges")
    parent = models.ForeignKey(WorkflowNode, on_delete=models.CASCADE, related_name="out_edges")
    child = models.ForeignKey(WorkflowNode, on_delete=models.CASCADE, related_name="in_edges")
    condition = models.CharField(max_length=16, choices=EdgeCondition.choices, default=EdgeCondition.ON_SUCCESS)

    class Meta:
        db_table = "workflow_edges"
        constraints = [models.UniqueConstraint(fields=["parent", "child"], name="uk_workflow_edge")]

    def __str__(self) -> str:
        return f"{self.parent.name} -> {self.child.name} ({self.condition})"


class WorkflowRun(models.Model):
    """One run of a workflow. Its node executions are ordinary TaskExecution rows carrying
    ``workflow_run`` and ``workflow_node``; the run's progress is derived from them."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    scheduled_time = models.DateTimeField()
    trigger_type = models.CharField(max_length=16, choices=TriggerType.choices, default=TriggerType.SCHEDULED)
    status = models.CharField(max_length=16, choices=WorkflowRunStatus.choices, default=WorkflowRunStatus.RUNNING)
    # 1, then one more for each re-run from failures: a node's executions are keyed by the round.
    round = models.IntegerField(default=1)
    parameters = models.JSONField(default=dict, blank=True)
    # The graph as it was when the run started: {"nodes": [{name, node_id, task_id, parameters}], "edges": [...],
    # "max_parallel_nodes": n}.
    graph = models.JSONField(default=dict)
    reason = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "workflow_runs"
        ordering = ["-scheduled_time", "-created_at"]
        indexes = [models.Index(fields=["workflow", "status"], name="idx_wf_run_status"),
                   models.Index(fields=["status"], name="idx_wf_run_status_only")]
        constraints = [
            # Exactly once per (workflow, scheduled time), as task fires: a split-brain leader's insert fails.
            models.UniqueConstraint(fields=["workflow", "scheduled_time", "trigger_type"], name="uk_workflow_fire"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} @ {self.scheduled_time:%Y-%m-%d %H:%M:%S}"

    def log_extra(self) -> dict:
        return {"workflow_id": self.workflow_id, "workflow_run_id": self.pk}
