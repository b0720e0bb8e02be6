"""Weighted round robin, using nginx's *smooth* algorithm.

Each choice, every executor's current weight grows by its weight; the one with
the largest current weight is picked and pays back the total weight. Over
``sum(weights)`` choices each executor is picked exactly ``weight`` times, and
the picks are spread out (weights 5,1,1 give ``a a b a c a a``) instead of
arriving in bursts (``a a a a a b c``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate, copy_state


def bumped_weights(tier: Sequence[Candidate], state: BalancerState) -> dict[str, int]:
    """Current weights of ``tier`` after this round's increment.

    Executors absent from ``tier`` are dropped; new ones start at 0, so a
    returning executor does not cash in credit it built up before it left.
    """
    return {c.executor_id: state.current_weights.get(c.executor_id, 0) + c.weight for c in tier}


class WeightedRoundRobin(BaseStrategy):
    """Smooth weighted round robin; failover order is by descending current weight."""

    name = "weighted_round_robin"

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        current = bumped_weights(tier, state)
        return sorted(tier, key=lambda c: (-current[c.executor_id], c.created_order, c.executor_id))

    def advance(self, tier: Sequence[Candidate], state: BalancerState, chosen: Candidate) -> BalancerState:
        current = bumped_weights(tier, state)
        current[chosen.executor_id] -= sum(c.weight for c in tier)
        return copy_state(state, current_weights=current)

    # on_failover keeps the default: the executor that refused the dispatch has
    # already paid for the pick, which steers the next choices away from it.
