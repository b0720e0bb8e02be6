"""Small builders shared by the load-balancing tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, Candidate
from loadbalance.selection import rank_executors


def cand(executor_id: str, created_order: int, *, priority: int = 0, weight: int = 1, running: int = 0) -> Candidate:
    return Candidate(
        executor_id=executor_id, priority=priority, weight=weight, running=running, created_order=created_order
    )


def cands(*ids: str, priority: int = 0) -> list[Candidate]:
    """One candidate per id, created in the given order."""
    return [cand(executor_id, i, priority=priority) for i, executor_id in enumerate(ids)]


def weighted(weights: dict[str, int]) -> list[Candidate]:
    """One candidate per id with the given weight, created in dict order."""
    return [cand(executor_id, i, weight=w) for i, (executor_id, w) in enumerate(weights.items())]


def choose_many(
    strategy_name: str,
    candidates: Sequence[Candidate],
    picks: int,
    state: BalancerState | None = None,
    rng: random.Random | None = None,
) -> tuple[list[str], BalancerState]:
    """Make ``picks`` successive choices, threading the state; return the chosen ids and the final state."""
    state = state if state is not None else BalancerState()
    rng = rng if rng is not None else random.Random(0)
    chosen = []
    for _ in range(picks):
        ranking, state = rank_executors(strategy_name, candidates, state, rng)
        chosen.append(ranking[0])
    return chosen, state
