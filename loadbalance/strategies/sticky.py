"""Sticky: keep sending a task to the same executor for as long as it can take it."""

from __future__ import annotations

import random
from collections.abc import Sequence

from loadbalance.base import BalancerState, BaseStrategy, Candidate, by_created_order, copy_state


class Sticky(BaseStrategy):
    """Stay on ``sticky_executor_id`` while it is eligible at all, even in a later tier.

    Staying put is the point of this strategy (warm caches, local state), so a
    recovered executor in a better tier does not pull the task back. When the
    bound executor is not eligible, the first executor of the first tier (by
    ``created_order``) is chosen and becomes the new binding.
    """

    name = "sticky"

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        ordered = by_created_order(tier)
        bound = [c for c in ordered if c.executor_id == state.sticky_executor_id]
        return bound + [c for c in ordered if c.executor_id != state.sticky_executor_id]

    def advance(self, tier: Sequence[Candidate], state: BalancerState, chosen: Candidate) -> BalancerState:
        return copy_state(state, sticky_executor_id=chosen.executor_id)

    def on_failover(self, state: BalancerState, executor_id: str) -> BalancerState:
        # Bind to whoever actually runs the task, or the next tick would try the
        # executor that just refused it.
        return copy_state(state, sticky_executor_id=executor_id)

    def pinned_executor_id(self, state: BalancerState) -> str | None:
        return state.sticky_executor_id
