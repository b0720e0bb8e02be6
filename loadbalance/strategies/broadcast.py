"""Broadcast: every eligible executor gets the fire, one shard each (no choice among them)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate, by_created_order


class Broadcast(BaseStrategy):
    """Rank every candidate in assignment order: the dispatcher gives each one shard of the run, shard i
    going to the i-th of the ranking, so shard numbers follow the assignments (tier by tier) and stay
    stable while the eligible set does. Stateless."""

    name = "broadcast"
    fans_out = True  # the whole ranking is used, not its head

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        return by_created_order(tier)
