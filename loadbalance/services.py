"""Database glue for the strategies: load the tasks' eligible executors and persisted state, rank, save."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from django.db import transaction
from django.db.models import Count

from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.choices import ExecutorStatus
from executors.models import Executor
from loadbalance.base import BalancerState, Candidate
from loadbalance.models import LoadBalanceState
from loadbalance.selection import rank_executors, record_choice
from tasks.models import Task, TaskExecutor


@dataclass(frozen=True)
class Ranking:
    executors: list[Executor]  # best first; the rest is the failover order
    assigned: int  # how many executors are assigned at all (to explain an empty ranking)


def _state_of(row: LoadBalanceState) -> BalancerState:
    return BalancerState(
        round_robin_index=row.round_robin_index,
        last_executor_id=row.last_executor_id,
        sticky_executor_id=row.sticky_executor_id,
        current_weights=dict(row.current_weights or {}),
    )


def _apply(row: LoadBalanceState, state: BalancerState, now: datetime) -> LoadBalanceState:
    row.round_robin_index = state.round_robin_index
    row.last_executor_id = state.last_executor_id
    row.sticky_executor_id = state.sticky_executor_id
    row.current_weights = state.current_weights
    row.updated_at = now
    return row


def _save(row: LoadBalanceState, state: BalancerState) -> None:
    _apply(row, state, row.updated_at).save()  # save() stamps updated_at itself


def _assignments_by_task(tasks: list[Task]) -> dict[str, list[TaskExecutor]]:
    by_task: dict[str, list[TaskExecutor]] = {task.pk: [] for task in tasks}
    # prefetch, not select_related: with the join, MariaDB may start from executors (a handful of rows) and
    # walk task_executors by executor_id -- every assignment of that executor, 100k rows at 100k tasks --
    # when its statistics are stale (after a bulk import). Two queries keep the read on uk_task_executor.
    assignments = (TaskExecutor.objects.filter(task_id__in=list(by_task)).prefetch_related("executor")
                   .order_by("priority", "created_at", "id"))
    for assignment in assignments:
        by_task[assignment.task_id].append(assignment)
    return by_task


def _running_per_executor(executor_ids: set[str]) -> dict[str, int]:
    return dict(
        TaskExecution.objects.filter(executor_id__in=executor_ids, status=ExecutionStatus.RUNNING)
        .values("executor_id").annotate(n=Count("id")).values_list("executor_id", "n")
    )


def _eligible(assignments: list[TaskExecutor], labels: dict | None = None) -> list[TaskExecutor]:
    """Online, healthy, and carrying every label the task targets (``Task.executor_labels``)."""
    return [a for a in assignments if a.executor.status == ExecutorStatus.ONLINE and a.executor.is_healthy
            and labels_match(a.executor.labels, labels)]


def labels_match(labels: dict | None, required: dict | None) -> bool:
    """Whether an executor's ``labels`` include every key and value of ``required``."""
    have = labels or {}
    return all(have.get(key) == value for key, value in (required or {}).items())


class Rankings:
    """Ranks every dispatch of one dispatcher step from state loaded once, and saves the strategies'
    state once: three reads and one transaction per step instead of a read-modify-write COMMIT per
    dispatch. Dispatches of the same task within the step see each other's state changes, and
    ``least_loaded`` counts the runs this step has already handed out."""

    def __init__(self, tasks: list[Task], rng: random.Random) -> None:
        self.rng = rng
        self.assignments = _assignments_by_task(tasks)
        loaded = LoadBalanceState.objects.filter(task_id__in=list(self.assignments))
        self.rows = {row.task_id: row for row in loaded}
        self.states = {task_id: _state_of(row) for task_id, row in self.rows.items()}
        least_loaded = {a.executor_id for task in tasks if task.load_balance_strategy == "least_loaded"
                        for a in _eligible(self.assignments[task.pk], task.executor_labels)}
        self.running = _running_per_executor(least_loaded) if least_loaded else {}

    def rank(self, task: Task) -> Ranking:
        """The task's online, healthy executors, best first; the strategy's new state is kept in memory."""
        eligible = _eligible(self.assignments[task.pk], task.executor_labels)
        if not eligible:
            return Ranking(executors=[], assigned=len(self.assignments[task.pk]))
        candidates = [
            Candidate(executor_id=a.executor_id, priority=a.priority, weight=max(1, a.weight),
                      running=self.running.get(a.executor_id, 0), created_order=index)
            for index, a in enumerate(eligible)
        ]
        state = self.states.get(task.pk) or BalancerState()
        order, self.states[task.pk] = rank_executors(task.load_balance_strategy, candidates, state, self.rng)
        self.running[order[0]] = self.running.get(order[0], 0) + 1
        executors = {a.executor_id: a.executor for a in eligible}
        return Ranking(executors=[executors[executor_id] for executor_id in order],
                       assigned=len(self.assignments[task.pk]))

    def save(self, now: datetime) -> int:
        """Write the states that changed, in one transaction. Returns how many rows were written. A task without
        a row gets one only once its strategy has something to remember (``_remembers``): a burst of new
        one-shots over one executor wrote a row per task for nothing.

        One UPDATE per distinct new state: tasks dispatched together mostly share it (round robin over the
        same executors, in step), so a step is usually a statement or two. (bulk_update's CASE per row and
        field cost more CPU on the loop thread than the writes themselves.)"""
        changed = {task_id: state for task_id, state in self.states.items()
                   if (state != _state_of(self.rows[task_id]) if task_id in self.rows else _remembers(state))}
        if not changed:
            return 0
        same_state: dict[str, list[str]] = defaultdict(list)
        for task_id in changed.keys() & self.rows.keys():
            same_state[json.dumps(asdict(changed[task_id]), sort_keys=True)].append(task_id)
        new = [_apply(LoadBalanceState(task_id=task_id), state, now)
               for task_id, state in changed.items() if task_id not in self.rows]
        with transaction.atomic():
            for task_ids in same_state.values():
                state = changed[task_ids[0]]
                LoadBalanceState.objects.filter(pk__in=task_ids).update(
                    round_robin_index=state.round_robin_index, last_executor_id=state.last_executor_id,
                    sticky_executor_id=state.sticky_executor_id, current_weights=state.current_weights,
                    updated_at=now)
            # A row another leader created meanwhile wins; the next step loads and continues from it.
            LoadBalanceState.objects.bulk_create(new, ignore_conflicts=True)
        return len(changed)


def _remembers(state: BalancerState) -> bool:
    """Whether a strategy's state says more than the initial one. The executor a run went to alone is not
    worth a row: each run's own row names it."""
    return replace(state, last_executor_id=None) != BalancerState()


def record_failover(task: Task, executor_id: str) -> None:
    """The head of the ranking refused and ``executor_id`` accepted: let the strategy know (sticky rebinds)."""
    row, _ = LoadBalanceState.objects.get_or_create(task=task)
    _save(row, record_choice(task.load_balance_strategy, _state_of(row), executor_id))
