from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from scheduler_project.ids import new_id
from tasks.choices import ExecutionMode, LoadBalanceStrategy, MisfirePolicy, TaskStatus

MAX_RETRY_LIMIT = 100
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


class Task(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, unique=True)
    cron_expression = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)
    execution_mode = models.CharField(max_length=16, choices=ExecutionMode.choices, default=ExecutionMode.PARALLEL)
    load_balance_strategy = models.CharField(
        max_length=32, choices=LoadBalanceStrategy.choices, default=LoadBalanceStrategy.ROUND_ROBIN
    )
    max_retry = models.IntegerField(default=3, validators=[MinValueValidator(0), MaxValueValidator(MAX_RETRY_LIMIT)])
    timeout_seconds = models.IntegerField(
        default=300, validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT_SECONDS)]
    )
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.ACTIVE)
    misfire_policy = models.CharField(max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.FIRE_ONCE)
    # The scheduler's due-time heap lives in the database: an indexed column read each tick sees every
    # change however it was made (API, admin, queryset.update) and survives a failover.
    next_run_time = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tasks"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status"], name="idx_status"),
            models.Index(fields=["name"], name="idx_name"),
            models.Index(fields=["status", "next_run_time"], name="idx_status_next_run"),
            models.Index(fields=["updated_at"], name="idx_tasks_updated_at"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.status == TaskStatus.DELETED


class TaskExecutor(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="task_executors")
    executor = models.ForeignKey("executors.Executor", on_delete=models.CASCADE, related_name="task_executors")
    priority = models.IntegerField(default=0, help_text="Lower numbers are tried first.")
    weight = models.IntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "task_executors"
        ordering = ["priority", "created_at"]
        constraints = [models.UniqueConstraint(fields=["task", "executor"], name="uk_task_executor")]

    def __str__(self) -> str:
        return f"{self.task_id} -> {self.executor_id}"
