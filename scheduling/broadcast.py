"""Broadcast dispatch: a logical run of a ``broadcast`` task fans out into one shard per eligible executor,
and each shard goes to its own executor only (no failover: another executor has its own shard).

The dispatcher calls ``rank_all`` for the runs it is about to start; parents come back replaced by their
shards, which start in the same step. From there each shard is a run of its own under the lease rules
(README "Leases"): claimed as its own attempt with its own accept-by and lease, renewed by its executor,
swept alone (timed out, or lost and retried as the same shard on the same executor), and its end settles
the broadcast run (``executions.services``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from django.db import transaction

from executions.models import TaskExecution
from executions.services import create_shards
from executors.models import Executor
from loadbalance.selection import fans_out
from loadbalance.services import Ranking, Rankings, labels_match


def rank_all(executions: list[TaskExecution], rankings: Rankings, now: datetime, *,
             atomic: Callable[[], AbstractContextManager] = transaction.atomic) -> list[tuple[TaskExecution, Ranking]]:
    """Each run with its ranked executors; a broadcast parent with eligible executors is replaced by its
    shards (created now, in a transaction of ``atomic``: the leader passes its fenced one), each ranked to
    its own executor."""
    pinned = Executor.objects.in_bulk([e.executor_id for e in executions if e.shard and e.executor_id])
    ranked: list[tuple[TaskExecution, Ranking]] = []
    for execution in executions:
        if execution.shard:
            ranked.append((execution, _pinned(execution, pinned.get(execution.executor_id))))
            continue
        ranking = rankings.rank(execution.task)
        if fans_out(execution.task.load_balance_strategy) and ranking.executors:
            shards = create_shards(execution, [executor.pk for executor in ranking.executors], now=now,
                                   atomic=atomic)
            by_id = {executor.pk: executor for executor in ranking.executors}
            ranked += [(shard, Ranking([by_id[shard.executor_id]], ranking.assigned)) for shard in shards]
        else:
            ranked.append((execution, ranking))
    return ranked


def _pinned(shard: TaskExecution, executor: Executor | None) -> Ranking:
    """A shard (or its retry) runs on the executor it was created for, while that one is eligible."""
    eligible = executor is not None and executor.is_eligible and labels_match(executor.labels,
                                                                              shard.task.executor_labels)
    return Ranking([executor] if eligible else [], 1)
