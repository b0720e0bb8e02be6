"""mask_secrets: values under secret-looking keys are masked at any depth, the rest is kept as it was."""

from __future__ import annotations

import copy

import pytest

from scheduler_project.redaction import MASK, mask_secrets, restore_masked


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db_password", "passwd", "pwd", "client_secret", "Secret", "token", "accessToken",
    "refresh-token", "api_key", "apiKey", "X-Api-Key", "aws_access_key_id", "private_key", "Authorization",
    "credential", "credentials", "Cookie", "session", "sessionid",
])
def test_secret_keys_are_masked_whatever_their_case_and_separators(key):
    assert mask_secrets({key: "s3cr3t", "name": "sync"}) == {key: MASK, "name": "sync"}


def test_nested_dicts_and_lists_are_masked_and_keep_their_shape():
    value = {
        "source": {"url": "https://db.example.com", "auth": {"username": "etl", "password": "hunter2"}},
        "targets": [{"name": "a", "token": "t-1"}, {"name": "b", "token": "t-2"}, "plain", 3],
        "count": 5,
        "enabled": True,
        "nothing": None,
    }
    assert mask_secrets(value) == {
        "source": {"url": "https://db.example.com", "auth": {"username": "etl", "password": MASK}},
        "targets": [{"name": "a", "token": MASK}, {"name": "b", "token": MASK}, "plain", 3],
        "count": 5,
        "enabled": True,
        "nothing": None,
    }


def test_a_secret_key_holding_a_structure_is_masked_whole():
    assert mask_secrets({"credentials": {"user": "u", "pass": "p"}, "tokens": ["a", "b"]}) == \
        {"credentials": MASK, "tokens": MASK}


def test_the_input_is_not_modified():
    value = {"outer": [{"password": "p"}], "ok": {"x": 1}}
    before = copy.deepcopy(value)
    masked = mask_secrets(value)
    assert value == before
    masked["ok"]["x"] = 2
    assert value["ok"]["x"] == 1  # a copy all the way down, not a view


def test_values_that_only_look_secret_are_kept():
    # Matching is by key: a value that happens to contain "password" under an innocent key stays.
    assert mask_secrets({"note": "reset the password", "keys": 3}) == {"note": "reset the password", "keys": 3}


def test_scalars_and_non_string_keys_pass_through():
    assert mask_secrets("password") == "password"
    assert mask_secrets(42) is 42  # noqa: F632 - the same object back
    assert mask_secrets({1: "a", None: "b"}) == {1: "a", None: "b"}
    assert mask_secrets(("a", {"secret": 1})) == ("a", {"secret": MASK})


def test_a_structure_containing_itself_is_cut():
    value: dict = {"name": "loop"}
    value["self"] = value
    assert mask_secrets(value) == {"name": "loop", "self": "<recursion>"}


def test_restore_puts_back_masks_left_untouched_and_keeps_edits():
    stored = {"db": {"password": "old", "host": "a"}, "token": "t", "api_key": "k", "items": [{"secret": "s"}]}
    submitted = {"db": {"password": MASK, "host": "b"}, "token": "new-token", "items": [{"secret": MASK}]}
    assert restore_masked(submitted, stored) == {
        "db": {"password": "old", "host": "b"}, "token": "new-token", "items": [{"secret": "s"}],
    }  # api_key was removed from the form: it is removed


def test_restore_does_not_invent_values_for_new_keys():
    # A mask typed under a key the stored value never had is kept literally, not filled from elsewhere.
    assert restore_masked({"password": MASK}, {}) == {"password": MASK}
