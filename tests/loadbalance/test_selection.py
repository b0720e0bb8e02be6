import copy
import random

import pytest

from loadbalance.base import BalancerState, Candidate
from loadbalance.selection import STRATEGIES, rank_executors, record_choice
from tests.loadbalance.helpers import cand, cands, choose_many

ALL_STRATEGIES = ["round_robin", "weighted_round_robin", "random", "sticky", "least_loaded", "broadcast"]

# Input deliberately not sorted by priority.
TIERED = [
    cand("p1-x", 0, priority=1, weight=3, running=0),
    cand("p0-a", 1, priority=0, weight=1, running=5),
    cand("p5-z", 2, priority=5, weight=9, running=0),
    cand("p0-b", 3, priority=0, weight=2, running=7),
    cand("p1-y", 4, priority=1, weight=1, running=1),
]


def test_registry_holds_exactly_the_six_strategies_under_their_names():
    assert sorted(STRATEGIES) == sorted(ALL_STRATEGIES)
    assert all(strategy.name == name for name, strategy in STRATEGIES.items())


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_lower_priority_number_tier_always_comes_first(name):
    state, rng = BalancerState(), random.Random(3)
    for _ in range(12):
        ranking, state = rank_executors(name, TIERED, state, rng)
        assert set(ranking[:2]) == {"p0-a", "p0-b"}
        assert set(ranking[2:4]) == {"p1-x", "p1-y"}
        assert ranking[4] == "p5-z"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("round_robin", ["p0-a", "p0-b", "p1-x", "p1-y", "p5-z"]),
        ("weighted_round_robin", ["p0-b", "p0-a", "p1-x", "p1-y", "p5-z"]),
        ("sticky", ["p0-a", "p0-b", "p1-x", "p1-y", "p5-z"]),
        ("least_loaded", ["p0-a", "p0-b", "p1-x", "p1-y", "p5-z"]),
    ],
)
def test_later_tiers_use_the_same_strategy_order(name, expected):
    ranking, _ = rank_executors(name, TIERED, BalancerState(), random.Random(0))
    assert ranking == expected


def test_later_tier_follows_the_strategy_not_created_order():
    candidates = [cand("main", 0), cand("busy", 1, priority=1, running=4), cand("idle", 2, priority=1, running=0)]
    ranking, _ = rank_executors("least_loaded", candidates, BalancerState(), random.Random(0))
    assert ranking == ["main", "idle", "busy"]


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_when_the_first_tier_empties_the_next_tier_takes_over(name):
    chosen, _ = choose_many(name, [c for c in TIERED if c.priority > 0], 6)
    assert set(chosen) <= {"p1-x", "p1-y"}


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_empty_candidates_return_nothing_and_leave_the_state_alone(name):
    state = BalancerState(round_robin_index=4, last_executor_id="a", sticky_executor_id="a", current_weights={"a": 2})
    ranking, new_state = rank_executors(name, [], state, random.Random(0))
    assert ranking == []
    assert new_state == state


@pytest.mark.parametrize("candidates", [[], cands("a")])
def test_unknown_strategy_is_a_value_error(candidates):
    with pytest.raises(ValueError, match="unknown load-balancing strategy 'fastest'"):
        rank_executors("fastest", candidates, BalancerState(), random.Random(0))
    with pytest.raises(ValueError, match="unknown load-balancing strategy"):
        record_choice("fastest", BalancerState(), "a")


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_input_state_is_never_mutated(name):
    state = BalancerState(round_robin_index=2, last_executor_id="p0-a", sticky_executor_id="p0-b")
    state.current_weights = {"p0-a": 1, "p0-b": -1, "gone": 5}
    before = copy.deepcopy(state)

    ranking, ranked_state = rank_executors(name, TIERED, state, random.Random(0))
    ranked_before = copy.deepcopy(ranked_state)
    recorded = record_choice(name, ranked_state, ranking[-1])

    assert state == before
    assert ranked_state == ranked_before
    assert ranked_state.current_weights is not state.current_weights
    assert recorded.current_weights is not ranked_state.current_weights


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_new_state_records_the_head_as_last_executor(name):
    ranking, state = rank_executors(name, TIERED, BalancerState(), random.Random(0))
    assert state.last_executor_id == ranking[0]


@pytest.mark.parametrize("name", ["round_robin", "weighted_round_robin", "random", "least_loaded"])
def test_record_choice_only_moves_last_executor_for_non_sticky_strategies(name):
    _, state = rank_executors(name, TIERED, BalancerState(sticky_executor_id="p0-a"), random.Random(0))
    recorded = record_choice(name, state, "p1-y")
    assert recorded == BalancerState(
        round_robin_index=state.round_robin_index,
        last_executor_id="p1-y",
        sticky_executor_id="p0-a",
        current_weights=state.current_weights,
    )


def test_duplicate_executor_ids_are_rejected():
    with pytest.raises(ValueError, match="duplicate executor ids"):
        rank_executors("round_robin", [cand("a", 0), cand("a", 1, priority=1)], BalancerState(), random.Random(0))


@pytest.mark.parametrize("weight", [0, -1])
def test_weight_below_one_is_rejected(weight):
    with pytest.raises(ValueError, match="weight must be >= 1"):
        Candidate(executor_id="a", priority=0, weight=weight, running=0, created_order=0)
