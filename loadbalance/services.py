"""Database glue for the strategies: load a task's eligible executors and its persisted state, rank, save."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db.models import Count, Q

from executions.choices import ExecutionStatus
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


def _save(row: LoadBalanceState, state: BalancerState) -> None:
    row.round_robin_index = state.round_robin_index
    row.last_executor_id = state.last_executor_id
    row.sticky_executor_id = state.sticky_executor_id
    row.current_weights = state.current_weights
    row.save()


def _candidates(task: Task) -> tuple[list[Candidate], dict[str, Executor], int]:
    assignments = list(
        TaskExecutor.objects.filter(task=task).select_related("executor").order_by("priority", "created_at", "id")
    )
    eligible = [a for a in assignments if a.executor.status == ExecutorStatus.ONLINE and a.executor.is_healthy]
    running: dict[str, int] = {}
    if task.load_balance_strategy == "least_loaded" and eligible:
        running = dict(
            Executor.objects.filter(pk__in=[a.executor_id for a in eligible])
            .annotate(n=Count("executions", filter=Q(executions__status=ExecutionStatus.RUNNING)))
            .values_list("id", "n")
        )
    candidates = [
        Candidate(executor_id=a.executor_id, priority=a.priority, weight=max(1, a.weight),
                  running=running.get(a.executor_id, 0), created_order=index)
        for index, a in enumerate(eligible)
    ]
    return candidates, {a.executor_id: a.executor for a in eligible}, len(assignments)


def rank_for_dispatch(task: Task, rng: random.Random) -> Ranking:
    """Rank the task's online, healthy executors with its strategy and persist the strategy's state."""
    candidates, executors, assigned = _candidates(task)
    if not candidates:
        return Ranking(executors=[], assigned=assigned)
    row, _ = LoadBalanceState.objects.get_or_create(task=task)
    order, state = rank_executors(task.load_balance_strategy, candidates, _state_of(row), rng)
    _save(row, state)
    return Ranking(executors=[executors[executor_id] for executor_id in order], assigned=assigned)


def record_failover(task: Task, executor_id: str) -> None:
    """The head of the ranking refused and ``executor_id`` accepted: let the strategy know (sticky rebinds)."""
    row, _ = LoadBalanceState.objects.get_or_create(task=task)
    _save(row, record_choice(task.load_balance_strategy, _state_of(row), executor_id))
