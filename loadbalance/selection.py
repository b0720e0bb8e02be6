"""Rank a task's eligible executors with its load-balancing strategy.

Priority tiers: candidates are grouped by ``priority`` (ascending). Every tier
is ordered by the task's strategy, computed from the same input state, and the
tiers are concatenated best tier first; only the choice (the head of the
ranking) advances the state. The one exception is ``sticky``: its bound
executor leads the ranking whenever it is eligible, whatever its tier.

The head of the ranking is the choice; the rest is the failover order if the
dispatch to it fails. When failover makes another executor accept, report it
with :func:`record_choice`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import groupby

from loadbalance.base import BalancerState, Candidate, Strategy, copy_state
from loadbalance.strategies.broadcast import Broadcast
from loadbalance.strategies.least_loaded import LeastLoaded
from loadbalance.strategies.random_order import RandomOrder
from loadbalance.strategies.round_robin import RoundRobin
from loadbalance.strategies.sticky import Sticky
from loadbalance.strategies.weighted_round_robin import WeightedRoundRobin

STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (RoundRobin(), WeightedRoundRobin(), RandomOrder(), Sticky(), LeastLoaded(), Broadcast())
}


def fans_out(strategy_name: str) -> bool:
    """Whether one fire of a task with this strategy runs on every eligible executor (one shard each)."""
    return getattr(get_strategy(strategy_name), "fans_out", False)


def rank_executors(
    strategy_name: str, candidates: Sequence[Candidate], state: BalancerState, rng: random.Random
) -> tuple[list[str], BalancerState]:
    """Return ``(executor ids best first, new state)`` for one dispatch.

    ``candidates`` are the task's eligible executors, with unique ids. The new
    state records the head of the ranking as chosen (``last_executor_id`` and
    the strategy's own fields); ``state`` itself is never modified. With no
    candidates the result is ``([], copy of state)``.

    Raises ``ValueError`` for an unknown strategy name or duplicate executor ids.
    """
    strategy = get_strategy(strategy_name)
    if not candidates:
        return [], copy_state(state)
    _require_unique_ids(candidates)
    tiers = group_into_tiers(candidates)
    ranking = [c for tier in tiers for c in strategy.order(tier, state, rng)]
    ranking = _move_to_front(ranking, strategy.pinned_executor_id(state))
    chosen = ranking[0]
    new_state = strategy.advance(tiers[0], state, chosen)
    return [c.executor_id for c in ranking], copy_state(new_state, last_executor_id=chosen.executor_id)


def record_choice(strategy_name: str, state: BalancerState, executor_id: str) -> BalancerState:
    """Return ``state`` (as returned by :func:`rank_executors`) corrected for ``executor_id`` having accepted.

    Use it when the head of the ranking failed and a failover executor took the
    dispatch. ``last_executor_id`` always moves to ``executor_id``; ``sticky``
    also rebinds to it. ``state`` itself is never modified.

    Raises ``ValueError`` for an unknown strategy name.
    """
    new_state = get_strategy(strategy_name).on_failover(state, executor_id)
    return copy_state(new_state, last_executor_id=executor_id)


def get_strategy(strategy_name: str) -> Strategy:
    """Return the registered strategy called ``strategy_name``; ``ValueError`` if there is none."""
    try:
        return STRATEGIES[strategy_name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown load-balancing strategy {strategy_name!r} (known: {known})") from None


def group_into_tiers(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Split ``candidates`` into tiers of equal ``priority``, lowest priority number first."""
    by_priority = sorted(candidates, key=lambda c: c.priority)
    return [list(tier) for _, tier in groupby(by_priority, key=lambda c: c.priority)]


def _require_unique_ids(candidates: Sequence[Candidate]) -> None:
    # Strategy state is keyed by executor id; a duplicate would be counted twice.
    ids = [c.executor_id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate executor ids among candidates: {sorted(ids)}")


def _move_to_front(ranking: list[Candidate], executor_id: str | None) -> list[Candidate]:
    pinned = [c for c in ranking if c.executor_id == executor_id]
    return pinned + [c for c in ranking if c.executor_id != executor_id]
