"""The console's timeline: one lane per task with a bar per run (start to end, coloured by status), cells where
a lane is too busy for bars, a marker per upcoming fire computed with the engine's own schedule code (time
zones and DST included), and a "now" line.

Budgets keep it fast over a million runs and 100,000 tasks: lanes are the busiest N (ranked over a sample of
the window's newest runs), a lane with more than ``BAR_BUDGET_PER_LANE`` runs is folded into cells grouped
by the database, and at most ``MARKER_BUDGET_PER_LANE`` upcoming fires are drawn per lane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms

from console.charts import timeline_svg
from core.timeline import Window, fold, upcoming, worst_status
from executions.selectors import TimelineFilters, busiest_tasks, lane_runs, running_since_before
from executors.selectors import executor_ids_matching
from tasks.choices import TaskStatus
from tasks.models import Task
from tasks.selectors import task_ids_matching


@dataclass
class Lane:
    task_id: str
    name: str
    total: int = 0
    bars: list[dict] = field(default_factory=list)  # {id, status, start, end, title}
    cells: list[dict] = field(default_factory=list)  # {start, end, status, counts, title}
    fires: list[datetime] = field(default_factory=list)
    more_fires: bool = False


def matching_tasks(text: str) -> tuple[str, ...] | None:
    return tuple(task_ids_matching(text.strip())) if text.strip() else None


def matching_executors(text: str) -> tuple[str, ...] | None:
    return tuple(executor_ids_matching(text.strip())) if text.strip() else None


def _lane_task_ids(window: Window, filters: TimelineFilters) -> list[str]:
    """The busiest tasks of the window; lanes left over go to tasks due to fire in the window's future part
    (a 02:00 pile-up shows before it happens)."""
    ids = busiest_tasks(window, filters)
    if len(ids) < filters.lanes and not filters.statuses and filters.executor_ids is None:
        due = Task.objects.filter(status=TaskStatus.ACTIVE, next_run_time__gte=window.now,
                                  next_run_time__lte=window.end).exclude(pk__in=ids)
        if filters.task_ids is not None:
            due = due.filter(pk__in=filters.task_ids)
        ids += list(due.order_by("next_run_time").values_list("pk", flat=True)[:filters.lanes - len(ids)])
    return ids


def _bar(row: dict, window: Window) -> dict:
    start = row["start_time"] or row["scheduled_time"]
    end = row["end_time"] or (window.now if row["status"] in ("running", "pending") else start)
    executor = f" on {row['executor__name']}" if row.get("executor__name") else ""
    title = f"{row['status']}: scheduled {row['scheduled_time']:%Y-%m-%d %H:%M:%S} UTC{executor}"
    if row["end_time"] and row["start_time"]:
        title += f", ran {(row['end_time'] - row['start_time']).total_seconds():.1f} s"
    return {"id": row["id"], "status": row["status"], "start": start, "end": end, "title": title}


def _cell(window: Window, start: datetime, counts: dict[str, int]) -> dict:
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda item: -item[1]))
    return {"start": start, "end": start + window.cell, "status": worst_status(counts), "counts": counts,
            "title": f"{start:%Y-%m-%d %H:%M} UTC: {summary}"}


def timeline(window: Window, filters: TimelineFilters) -> list[Lane]:
    ids = _lane_task_ids(window, filters)
    tasks = {task.pk: task for task in Task.objects.filter(pk__in=ids)}
    runs = lane_runs(window, ids, filters)
    lanes = []
    for task_id in ids:
        task, found = tasks.get(task_id), runs[task_id]
        if task is None:
            continue
        cells = sorted(fold(window, found.groups).items())
        lane = Lane(task_id=task_id, name=task.name, total=found.total,
                    bars=[_bar(row, window) for row in found.bars],
                    cells=[_cell(window, start, counts) for start, counts in cells])
        if task.status == TaskStatus.ACTIVE:
            lane.fires, lane.more_fires = upcoming(task.schedule().next_after, window.now, window.end)
        lanes.append(lane)
    by_task = {lane.task_id: lane for lane in lanes}
    for row in running_since_before(window, list(by_task)):
        by_task[row["task_id"]].bars.append(_bar(row, window))
    return lanes


def timeline_chart(window: Window, lanes: list[Lane], execution_url) -> str:
    return timeline_svg(window, lanes, execution_url=execution_url)


class TimelineForm(forms.Form):
    """The timeline's filters (GET): a zoom preset, task and executor (name or id), statuses, lane count.
    A bad value falls back to its default: the page always renders."""

    zoom = forms.ChoiceField(choices=[(zoom, zoom) for zoom in ("1h", "6h", "24h", "7d")], required=False,
                             initial="6h")
    task = forms.CharField(required=False, max_length=200, label="Task", help_text="name or id")
    executor = forms.CharField(required=False, max_length=200, label="Executor", help_text="name, instance or id")
    status = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(status, status) for status in ("success", "failed", "timeout", "running", "pending", "skipped",
                                                 "cancelled")])
    lanes = forms.IntegerField(required=False, min_value=1, max_value=100, initial=20, label="Lanes")

    def cleaned_value(self, name: str) -> Any:
        """The field's value, or its default when left out or invalid (each field on its own)."""
        if self.is_bound and not self.is_valid() and name in self.errors:
            return self.fields[name].initial
        value = self.cleaned_data.get(name) if self.is_bound else None
        return self.fields[name].initial if value in (None, "", []) else value

    def filters(self):
        return TimelineFilters(task_ids=matching_tasks(self.cleaned_value("task") or ""),
                               executor_ids=matching_executors(self.cleaned_value("executor") or ""),
                               statuses=tuple(self.cleaned_value("status") or ()),
                               lanes=self.cleaned_value("lanes"))
