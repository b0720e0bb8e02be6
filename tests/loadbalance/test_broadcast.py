import random

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import fans_out, rank_executors
from tests.loadbalance.helpers import cand


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([cand("a", 0), cand("b", 1), cand("c", 2)], ["a", "b", "c"]),
        ([cand("c", 2), cand("a", 0), cand("b", 1)], ["a", "b", "c"]),  # assignment order, not input order
        ([cand("a", 0, priority=5), cand("b", 1), cand("c", 2, running=9)], ["b", "c", "a"]),  # tiers first
        ([cand("a", 0)], ["a"]),
    ],
)
def test_broadcast_ranks_every_executor_in_assignment_order(candidates, expected):
    ranking, state = rank_executors("broadcast", candidates, BalancerState(), random.Random(0))
    assert ranking == expected
    assert state == BalancerState(last_executor_id=expected[0])


def test_only_broadcast_fans_out():
    assert fans_out("broadcast")
    assert not any(fans_out(name) for name in ("round_robin", "weighted_round_robin", "random", "sticky",
                                                "least_loaded"))
