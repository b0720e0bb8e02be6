"""Round robin: take executors in assignment order, one after the other."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate, by_created_order, copy_state


class RoundRobin(BaseStrategy):
    """Rotate the tier (in ``created_order``) so it starts at ``round_robin_index % len(tier)``.

    With a stable set of N executors, N*k consecutive choices pick each exactly
    k times. When the set changes the modulo simply re-maps the index onto the
    new set: nothing breaks, though the rotation may repeat or skip one
    executor once at the moment of the change.
    """

    name = "round_robin"

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        ordered = by_created_order(tier)
        if not ordered:
            return []
        start = state.round_robin_index % len(ordered)
        return ordered[start:] + ordered[:start]

    def advance(self, tier: Sequence[Candidate], state: BalancerState, chosen: Candidate) -> BalancerState:
        # Counting choices rather than storing a position keeps the index
        # meaningful whichever executors join or leave before the next choice.
        # A rotation over one executor has nowhere to go: the state stays as it
        # is, so a task with one executor writes no balancer state per run.
        if len(tier) <= 1:
            return state
        return copy_state(state, round_robin_index=state.round_robin_index + 1)
