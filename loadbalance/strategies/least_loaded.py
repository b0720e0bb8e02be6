"""Least loaded: prefer the executor with the fewest running executions."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate


class LeastLoaded(BaseStrategy):
    """Order by ``running`` ascending, ties by ``created_order``; weights are ignored."""

    name = "least_loaded"

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        return sorted(tier, key=lambda c: (c.running, c.created_order, c.executor_id))
