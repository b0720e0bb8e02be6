import random
from collections import Counter

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import rank_executors
from tests.loadbalance.helpers import cand, cands, choose_many

IDS = ("a", "b", "c", "d", "e")


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31])
def test_same_seed_same_rankings(seed):
    first, _ = choose_many("random", cands(*IDS), 20, rng=random.Random(seed))
    second, _ = choose_many("random", cands(*IDS), 20, rng=random.Random(seed))
    assert first == second


@pytest.mark.parametrize("seed", [0, 7])
def test_ranking_does_not_depend_on_input_order(seed):
    forward, _ = rank_executors("random", cands(*IDS), BalancerState(), random.Random(seed))
    backward, _ = rank_executors("random", list(reversed(cands(*IDS))), BalancerState(), random.Random(seed))
    assert forward == backward


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("ids", [("solo",), ("a", "b"), IDS])
def test_every_candidate_appears_exactly_once(seed, ids):
    ranking, _ = rank_executors("random", cands(*ids), BalancerState(), random.Random(seed))
    assert sorted(ranking) == sorted(ids)


def test_choices_are_roughly_uniform_and_ignore_weight():
    candidates = [cand("heavy", 0, weight=100), cand("b", 1), cand("c", 2)]
    chosen, _ = choose_many("random", candidates, 3000, rng=random.Random(1234))
    assert all(850 <= count <= 1150 for count in Counter(chosen).values())
    assert set(chosen) == {"heavy", "b", "c"}


def test_only_last_executor_changes_in_the_state():
    state = BalancerState(round_robin_index=3, sticky_executor_id="x", current_weights={"a": 1})
    ranking, new_state = rank_executors("random", cands(*IDS), state, random.Random(5))
    assert new_state == BalancerState(
        round_robin_index=3, last_executor_id=ranking[0], sticky_executor_id="x", current_weights={"a": 1}
    )
