from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.calendars import Blackout
from core.controls import MAX_JITTER_SECONDS
from core.schedules import Schedule, build_schedule
from scheduler_project.ids import new_id
from scheduler_project.text import refuse_control_characters
from tasks.choices import ExecutionMode, LoadBalanceStrategy, MisfirePolicy, ScheduleType, TaskStatus

MAX_RETRY_LIMIT = 100
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


class Task(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, unique=True, validators=[refuse_control_characters])
    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices, default=ScheduleType.CRON)
    # Required for cron tasks; empty for the other schedule types.
    cron_expression = models.CharField(max_length=100, blank=True, default="")
    interval_seconds = models.IntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    # Interval tasks fire at start_at + k·interval_seconds; defaults to the creation time.
    start_at = models.DateTimeField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    # The window: no fire before start_at (above) or after end_at, for every schedule type.
    end_at = models.DateTimeField(null=True, blank=True)
    # Each run is dispatched up to this many seconds after its fire time, by a delay fixed per
    # (task, fire time) (core.controls.jitter); null or 0: no jitter.
    jitter_seconds = models.IntegerField(null=True, blank=True,
                                         validators=[MinValueValidator(0), MaxValueValidator(MAX_JITTER_SECONDS)])
    # Only assigned executors whose labels include all of these (e.g. {"region": "eu"}) receive its runs.
    executor_labels = models.JSONField(default=dict, blank=True)
    # Fires that fall in any of these calendars are recorded as skipped.
    calendars = models.ManyToManyField("tasks.BlackoutCalendar", blank=True, related_name="tasks")
    timezone = models.CharField(max_length=64, default="UTC")
    # Higher runs first when many fires are due at once.
    priority = models.IntegerField(default=0)
    # Parallel mode: at most this many executions of the task pending or running at once (null: no cap).
    max_instances = models.IntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
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
    # Set when a one-shot task (date, once) has fired: it is done and will not fire again.
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Who created the task through the API: the user (password, JWT, session or a key's owner) and/or the
    # API key. Kept when either is deleted later (SET_NULL); a task made by the scheduler itself has neither.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, editable=False,
                                   on_delete=models.SET_NULL, related_name="+")
    created_by_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, editable=False,
                                       on_delete=models.SET_NULL, related_name="+")
    # The executor whose registration created the task: the only registration that may update it later.
    declared_by = models.ForeignKey("executors.Executor", null=True, blank=True, editable=False,
                                    on_delete=models.SET_NULL, related_name="+")

    class Meta:
        db_table = "tasks"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status"], name="idx_status"),
            models.Index(fields=["name"], name="idx_name"),
            models.Index(fields=["status", "next_run_time"], name="idx_status_next_run"),
            models.Index(fields=["updated_at"], name="idx_tasks_updated_at"),
            # The API's task list, newest first (tasks.selectors.task_list): a page is an index walk, not a
            # sort of every task (a million tasks took seconds to sort per page).
            models.Index(fields=["created_at"], name="idx_tasks_created_at"),
            models.Index(fields=["status", "created_at"], name="idx_tasks_status_created"),
        ]

    def __str__(self) -> str:
        return self.name

    def log_extra(self) -> dict:
        """Identifiers the engine attaches to every log line about this task (structured logs)."""
        return {"task_id": self.pk}

    @property
    def is_deleted(self) -> bool:
        return self.status == TaskStatus.DELETED

    def schedule(self) -> Schedule:
        """This task's fire times. A ``once`` task's single fire is its persisted next_run_time."""
        return build_schedule(
            schedule_type=self.schedule_type, cron_expression=self.cron_expression, timezone=self.timezone,
            interval_seconds=self.interval_seconds, start_at=self.window_start(), run_at=self.run_at,
            once_at=self.next_run_time, end_at=self.end_at,
        )

    def window_start(self) -> datetime | None:
        """An interval is anchored at its start (the creation time by default); other types' start is a bound."""
        return self.start_at or self.created_at if self.schedule_type == ScheduleType.INTERVAL else self.start_at

    def blackouts(self) -> list[Blackout]:
        """The task's calendars, parsed (prefetch ``calendars`` when reading many tasks). An unsaved task (the
        console's live preview) has none yet."""
        if self._state.adding:
            return []
        return [calendar.blackout() for calendar in self.calendars.all()]


class BlackoutCalendar(models.Model):
    """A named set of local times in which the tasks that reference it do not fire (core.calendars)."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id, editable=False)
    name = models.CharField(max_length=255, unique=True)
    timezone = models.CharField(max_length=64, default="UTC")
    # Entries as written: "2026-12-25", "2026-12-24..2026-12-26", "Sun 02:00-04:00".
    entries = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "blackout_calendars"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def blackout(self) -> Blackout:
        return Blackout.of(self.name, self.timezone, list(self.entries))


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
