"""core.cron against references nobody here wrote (tests/core/cron_reference.py): 7,000 random expressions ×
zones (a fifth with seconds; half the starts within a day of a DST change), 12 fires each.

- The DST oracle (cronsim's wall-clock sequence, our DST rule brute-forced): no disagreement at all.
- cronsim with aware datetimes: one known class, where core.cron is right by its documented rule —
  for 6-field expressions, or when the minute or hour field starts with ``*``, cronsim walks UTC across a
  DST change (cronie's behaviour for such jobs: a repeated hour runs twice, a skipped wall time not at all),
  while core.cron applies one rule to every expression (README, "Time zones and DST").
  The references read ``a-a/n`` as ``a`` (cronie's reading; cronsim alone reads it as ``a/n``): see
  ``cronie_spelling``.
- croniter (the engine underneath) is not a reference: it widens ``a-a``, ORs the day fields unless one is
  exactly ``*``, mishandles ``#``/``L`` with a day of month and ``7/n`` in day of week, and has DST bugs.
  core/cron.py corrects each; its count is printed by ``python -m tests.core.cron_reference``.
"""

from collections import Counter

import pytest

from core.cron import parse_cron
from tests.core.cron_reference import (
    Case,
    attempt,
    cases,
    classify_cronsim,
    cronsim_fires,
    engine_fires,
    oracle_fires,
)

CASES = cases(1000, six_fields=0.2)


@pytest.fixture(scope="module")
def ours() -> list:
    return [attempt(engine_fires, case.expression, case.zone_name, case.start) for case in CASES]


def test_every_fire_sequence_matches_the_dst_oracle(ours):
    wrong = [case for case, fires in zip(CASES, ours, strict=True)
             if fires != attempt(oracle_fires, case.expression, case.zone_name, case.start)]
    assert wrong == [], f"{len(wrong)} of {len(CASES)} differ, first: {wrong[:3]}"


def test_every_disagreement_with_cronsim_is_of_a_known_class(ours):
    classes: Counter = Counter()
    unexplained: list[Case] = []
    for case, fires in zip(CASES, ours, strict=True):
        theirs = attempt(cronsim_fires, case.expression, case.zone_name, case.start)
        if fires != theirs:
            kind = classify_cronsim(case, fires, theirs)
            classes[kind] += 1
            if kind == "cronsim: unexplained":
                unexplained.append(case)
    assert unexplained == [], f"{classes}, first: {unexplained[:3]}"
    assert sum(classes.values()) < len(CASES) // 20  # the known class is rare: it needs a DST change nearby


def test_every_expression_of_the_sample_is_accepted():
    refused = [case.expression for case in CASES if attempt(parse_cron, case.expression, case.zone_name) is None]
    assert refused == []
