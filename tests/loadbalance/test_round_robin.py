import random
from collections import Counter

import pytest

from loadbalance.base import BalancerState
from loadbalance.selection import rank_executors
from tests.loadbalance.helpers import cands, choose_many

# Fixed assignment order, so subsets keep their created_order when the set changes.
ALL = cands("a", "b", "c", "d", "e")


def subset(*ids):
    return [c for c in ALL if c.executor_id in ids]


@pytest.mark.parametrize("executors", [1, 2, 3, 7])
@pytest.mark.parametrize("rounds", [1, 4, 25])
def test_each_executor_is_chosen_exactly_k_times_in_n_times_k_picks(executors, rounds):
    ids = [f"e{i}" for i in range(executors)]
    chosen, _ = choose_many("round_robin", cands(*ids), executors * rounds)
    assert Counter(chosen) == dict.fromkeys(ids, rounds)


@pytest.mark.parametrize(
    ("start_index", "expected"),
    [
        (0, ["a", "b", "c"]),
        (1, ["b", "c", "a"]),
        (2, ["c", "a", "b"]),
        (3, ["a", "b", "c"]),
        (10**9 + 1, ["c", "a", "b"]),
    ],
)
def test_ranking_is_created_order_rotated_to_the_index(start_index, expected):
    state = BalancerState(round_robin_index=start_index)
    ranking, new_state = rank_executors("round_robin", subset("a", "b", "c"), state, random.Random(0))
    assert ranking == expected
    assert new_state.round_robin_index == start_index + 1


def test_ranking_ignores_input_order():
    state = BalancerState(round_robin_index=1)
    ranking, _ = rank_executors("round_robin", list(reversed(subset("a", "b", "c"))), state, random.Random(0))
    assert ranking == ["b", "c", "a"]


@pytest.mark.parametrize(
    ("before", "picks_before", "after", "expected_next"),
    [
        # added: the index keeps counting and is re-mapped onto the bigger set
        (["a", "b"], 2, ["a", "b", "c"], ["c", "a", "b", "c"]),
        # a rotation over one executor does not count: it starts from where it was
        (["a"], 5, ["a", "b"], ["a", "b", "a", "b"]),
        # removed: the index wraps onto what is left
        (["a", "b", "c"], 2, ["a", "b"], ["a", "b", "a", "b"]),
        (["a", "b", "c"], 1, ["a", "c"], ["c", "a", "c", "a"]),
        (["a", "b", "c"], 2, ["b"], ["b", "b", "b", "b"]),
    ],
)
def test_executor_set_changes_keep_rotating(before, picks_before, after, expected_next):
    _, state = choose_many("round_robin", subset(*before), picks_before)
    chosen, _ = choose_many("round_robin", subset(*after), len(expected_next), state)
    assert chosen == expected_next


def test_fair_again_after_the_set_changes():
    _, state = choose_many("round_robin", subset("a", "b", "c"), 4)
    chosen, _ = choose_many("round_robin", ALL, 5 * 6, state)
    assert Counter(chosen) == dict.fromkeys("abcde", 6)


def test_a_rotation_over_one_executor_leaves_the_state_as_it_was():
    state = BalancerState(round_robin_index=7, last_executor_id="a")
    ranking, new_state = rank_executors("round_robin", subset("a"), state, random.Random(0))
    assert ranking == ["a"] and new_state == state
