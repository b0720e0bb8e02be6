import random
from collections import Counter

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import rank_executors
from tests.loadbalance.helpers import cand, choose_many, weighted


@pytest.mark.parametrize(
    ("weights", "expected_cycle"),
    [
        ({"a": 5, "b": 1, "c": 1}, "aabacaa"),
        ({"a": 2, "b": 1}, "aba"),
        ({"a": 3, "b": 2}, "ababa"),
        ({"a": 1, "b": 1, "c": 1}, "abc"),
        ({"a": 1, "b": 4}, "bbabb"),
    ],
)
def test_smooth_interleaved_sequence(weights, expected_cycle):
    chosen, _ = choose_many("weighted_round_robin", weighted(weights), 2 * len(expected_cycle))
    assert "".join(chosen) == expected_cycle * 2


@pytest.mark.parametrize(
    "weights",
    [{"a": 5, "b": 1, "c": 1}, {"a": 2, "b": 1}, {"a": 7, "b": 3, "c": 2, "d": 1}, {"only": 4}, {"a": 1, "b": 1000}],
)
@pytest.mark.parametrize("cycles", [1, 3])
def test_each_executor_is_chosen_weight_times_per_cycle(weights, cycles):
    chosen, state = choose_many("weighted_round_robin", weighted(weights), cycles * sum(weights.values()))
    assert Counter(chosen) == {executor_id: cycles * w for executor_id, w in weights.items()}
    # a full cycle brings every current weight back to where it started
    assert state.current_weights == dict.fromkeys(weights, 0)


@pytest.mark.parametrize(
    ("current_weights", "expected_ranking"),
    [
        ({}, ["a", "b", "c"]),  # bumped to 5, 1, 1
        ({"a": -2, "b": 1, "c": 1}, ["a", "b", "c"]),  # 3, 2, 2: tie broken by created_order
        ({"a": -4, "b": 2, "c": 2}, ["b", "c", "a"]),  # 1, 3, 3
        ({"a": 1, "b": -5, "c": 3}, ["a", "c", "b"]),  # 6, -4, 4
    ],
)
def test_failover_order_is_by_descending_current_weight(current_weights, expected_ranking):
    state = BalancerState(current_weights=current_weights)
    candidates = weighted({"a": 5, "b": 1, "c": 1})
    ranking, _ = rank_executors("weighted_round_robin", candidates, state, random.Random(0))
    assert ranking == expected_ranking


def test_chosen_pays_back_the_total_weight():
    state = BalancerState(current_weights={"a": -2, "b": 1, "c": 1})
    _, new_state = rank_executors("weighted_round_robin", weighted({"a": 5, "b": 1, "c": 1}), state, random.Random(0))
    assert new_state.current_weights == {"a": 3 - 7, "b": 2, "c": 2}


def test_removed_executors_are_dropped_from_the_state():
    state = BalancerState(current_weights={"a": 1, "gone": 7, "also_gone": -3})
    _, new_state = rank_executors("weighted_round_robin", weighted({"a": 2, "b": 1}), state, random.Random(0))
    assert set(new_state.current_weights) == {"a", "b"}


def test_new_executor_starts_at_zero():
    state = BalancerState(current_weights={"a": -3})
    ranking, new_state = rank_executors("weighted_round_robin", weighted({"a": 1, "b": 1}), state, random.Random(0))
    assert ranking == ["b", "a"]  # bumped: a = -2, b = 0 + 1
    assert new_state.current_weights == {"a": -2, "b": 1 - 2}


def test_only_the_first_tier_is_tracked():
    candidates = [cand("a", 0, weight=2), cand("b", 1, weight=1), cand("backup", 2, priority=1, weight=9)]
    ranking, state = rank_executors("weighted_round_robin", candidates, BalancerState(), random.Random(0))
    assert ranking == ["a", "b", "backup"]
    assert set(state.current_weights) == {"a", "b"}


def test_distribution_survives_a_removed_and_returning_executor():
    weights = {"a": 3, "b": 2, "c": 1}
    _, state = choose_many("weighted_round_robin", weighted(weights), 4)
    _, state = choose_many("weighted_round_robin", weighted({"a": 3, "b": 2}), 3, state)
    # c returns at 0; once the state has settled (60 picks), whole cycles are exact again
    _, state = choose_many("weighted_round_robin", weighted(weights), 6 * 10, state)
    chosen, _ = choose_many("weighted_round_robin", weighted(weights), 6 * 5, state)
    assert Counter(chosen) == {"a": 15, "b": 10, "c": 5}
