import random

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import rank_executors
from tests.loadbalance.helpers import cand


@pytest.mark.parametrize(
    ("running", "expected_ranking"),
    [
        ({"a": 0, "b": 0, "c": 0}, ["a", "b", "c"]),  # all tied: created_order
        ({"a": 3, "b": 1, "c": 2}, ["b", "c", "a"]),
        ({"a": 2, "b": 5, "c": 0}, ["c", "a", "b"]),
        ({"a": 1, "b": 0, "c": 0}, ["b", "c", "a"]),  # tie among the least loaded
        ({"a": 0, "b": 9, "c": 9}, ["a", "b", "c"]),  # tie among the rest
        ({"a": 4}, ["a"]),
    ],
)
def test_fewest_running_first_ties_by_created_order(running, expected_ranking):
    candidates = [cand(executor_id, i, running=n) for i, (executor_id, n) in enumerate(running.items())]
    ranking, state = rank_executors("least_loaded", list(reversed(candidates)), BalancerState(), random.Random(0))
    assert ranking == expected_ranking
    assert state == BalancerState(last_executor_id=expected_ranking[0])


def test_weight_is_ignored():
    candidates = [cand("heavy", 0, weight=50, running=2), cand("light", 1, weight=1, running=1)]
    ranking, _ = rank_executors("least_loaded", candidates, BalancerState(), random.Random(0))
    assert ranking == ["light", "heavy"]
