import random

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import rank_executors, record_choice
from tests.loadbalance.helpers import cand, cands, choose_many


def rank(candidates, state):
    return rank_executors("sticky", candidates, state, random.Random(0))


@pytest.mark.parametrize(
    ("bound", "candidates", "expected_ranking"),
    [
        # no binding yet: first of the first tier by created_order
        (None, cands("a", "b", "c"), ["a", "b", "c"]),
        # bound and eligible: stay, the rest in created_order
        ("b", cands("a", "b", "c"), ["b", "a", "c"]),
        ("c", cands("a", "b", "c"), ["c", "a", "b"]),
        # bound executor no longer eligible: rebind to the first of the first tier
        ("gone", cands("a", "b", "c"), ["a", "b", "c"]),
        ("a", cands("b", "c"), ["b", "c"]),
        # bound executor eligible only in a later tier: still stay on it
        ("backup", [cand("a", 0), cand("backup", 1, priority=1), cand("z", 2, priority=1)], ["backup", "a", "z"]),
    ],
)
def test_choice_and_binding(bound, candidates, expected_ranking):
    ranking, state = rank(candidates, BalancerState(sticky_executor_id=bound))
    assert ranking == expected_ranking
    assert state.sticky_executor_id == expected_ranking[0]
    assert state.last_executor_id == expected_ranking[0]


def test_stays_on_the_same_executor_across_many_choices():
    chosen, state = choose_many("sticky", cands("a", "b", "c"), 10, BalancerState(sticky_executor_id="b"))
    assert chosen == ["b"] * 10
    assert state.sticky_executor_id == "b"


def test_rebinds_when_bound_executor_disappears_then_stays_on_the_new_one():
    _, state = choose_many("sticky", cands("a", "b", "c"), 3)
    assert state.sticky_executor_id == "a"
    chosen, state = choose_many("sticky", [cand("b", 1), cand("c", 2)], 3, state)
    assert chosen == ["b", "b", "b"]
    # a comes back but the task stays where it is now
    chosen, _ = choose_many("sticky", cands("a", "b", "c"), 3, state)
    assert chosen == ["b", "b", "b"]


def test_record_choice_rebinds_to_the_executor_that_accepted():
    ranking, state = rank(cands("a", "b", "c"), BalancerState())
    assert ranking[0] == "a"
    state = record_choice("sticky", state, "b")  # a refused, failover to b
    assert (state.sticky_executor_id, state.last_executor_id) == ("b", "b")
    next_ranking, _ = rank(cands("a", "b", "c"), state)
    assert next_ranking[0] == "b"
