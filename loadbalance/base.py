"""The one interface every load-balancing strategy implements.

Everything in this package is plain Python: no Django imports, no I/O. The
scheduler loads rows into :class:`Candidate` / :class:`BalancerState`, asks
:func:`loadbalance.selection.rank_executors` for a ranking, and persists the
returned state itself.

A strategy never mutates its inputs. Methods that "change" state return a new
:class:`BalancerState`; :func:`copy_state` is the only safe way to derive one,
because ``dataclasses.replace`` alone would share the ``current_weights`` dict.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol


@dataclass(frozen=True)
class Candidate:
    """An eligible (online and healthy) executor assigned to one task.

    ``executor_id`` must be unique among the candidates of one ranking.
    """

    executor_id: str
    priority: int  # lower number = preferred tier
    weight: int  # >= 1
    running: int  # executions currently running on this executor (for least_loaded)
    created_order: int  # stable tie-breaker (assignment order)

    def __post_init__(self) -> None:
        # Smooth WRR divides no work among zero-weight executors and would pick
        # them forever once their current weight tops the others; reject early.
        if self.weight < 1:
            raise ValueError(f"weight must be >= 1, got {self.weight} for {self.executor_id!r}")


@dataclass
class BalancerState:
    """Per-task strategy memory; mirrors the ``load_balance_state`` table."""

    round_robin_index: int = 0
    last_executor_id: str | None = None
    sticky_executor_id: str | None = None
    current_weights: dict[str, int] = field(default_factory=dict)  # smooth WRR


class Strategy(Protocol):
    """How one load-balancing strategy ranks executors and updates its memory.

    All methods are pure: they read their arguments and return new values.
    """

    name: str

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        """Return every candidate of ``tier`` exactly once, best first."""
        ...

    def advance(self, tier: Sequence[Candidate], state: BalancerState, chosen: Candidate) -> BalancerState:
        """Return the state after ``chosen`` was picked as the head of a ranking whose first tier is ``tier``.

        ``chosen`` belongs to ``tier`` unless :meth:`pinned_executor_id` put it first.
        """
        ...

    def on_failover(self, state: BalancerState, executor_id: str) -> BalancerState:
        """Return the state after ``executor_id``, not the ranked head, accepted the dispatch."""
        ...

    def pinned_executor_id(self, state: BalancerState) -> str | None:
        """An executor that must lead the ranking whenever it is eligible, in any tier; usually None."""
        ...


class BaseStrategy:
    """Defaults for a stateless strategy; subclasses implement :meth:`order`."""

    name: str = ""

    def order(self, tier: Sequence[Candidate], state: BalancerState, rng: random.Random) -> list[Candidate]:
        raise NotImplementedError

    def advance(self, tier: Sequence[Candidate], state: BalancerState, chosen: Candidate) -> BalancerState:
        return copy_state(state)

    def on_failover(self, state: BalancerState, executor_id: str) -> BalancerState:
        return copy_state(state)

    def pinned_executor_id(self, state: BalancerState) -> str | None:
        return None


def copy_state(state: BalancerState, **changes: object) -> BalancerState:
    """Return a copy of ``state`` with ``changes`` applied that shares no mutable parts with it."""
    changes.setdefault("current_weights", dict(state.current_weights))
    return replace(state, **changes)


def stable_key(candidate: Candidate) -> tuple[int, str]:
    """Sort key for "assignment order"; the id only breaks exact ties so results never depend on input order."""
    return (candidate.created_order, candidate.executor_id)


def by_created_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Return a new list of ``candidates`` in assignment order."""
    return sorted(candidates, key=stable_key)
