"""Random: a uniformly random order, drawn from the injected RNG."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate, by_created_order


class RandomOrder(BaseStrategy):
    """Shuffle the tier uniformly (weights are ignored); deterministic for a seeded ``rng``."""

    name = "random"

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        # Sorting first makes the result depend only on the rng and the set of
        # executors, not on the order the caller happened to load them in.
        shuffled = by_created_order(tier)
        rng.shuffle(shuffled)
        return shuffled
