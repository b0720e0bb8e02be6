"""The 2-minute chaos run (tests/chaos/harness.py): a real three-node cluster whose leader and executors are
SIGKILLed and SIGSTOPped, whose database and web server go down or freeze and which a node with a skewed clock
joins, at random while 200 tasks fire, then an audit of what was recorded. Needs MariaDB/MySQL (the
suite's database with server-side locks); the seed is printed and can be replayed with CHAOS_SEED.

The 10-minute run is ``bench/chaos.py --minutes 10``.
"""

from __future__ import annotations

import os
import random

import pytest
from django.db import connection

from tests.chaos.harness import KINDS, run_chaos
from tests.processes import LIBFAKETIME

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(connection.vendor != "mysql", reason="the chaos suite runs on MariaDB/MySQL"),
]

STORM_SECONDS = 120


def test_cluster_keeps_its_guarantees_through_two_minutes_of_leader_and_executor_failures(procs):
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
    result = run_chaos(procs, seconds=STORM_SECONDS, seed=seed, gap=(3.0, 8.0), freeze=(1.0, 9.0))
    report = result.report()
    (procs.log_dir / "report.txt").write_text(report + "\n")
    print(report)

    assert len(result.disruptions) >= 8, report
    assert {d.kind for d in result.disruptions} == {kind for kind in KINDS if kind != "SKEW" or LIBFAKETIME}, report
    assert result.accounted["executed"] > 500, report
    assert sum(result.workflow_runs.values()) > 10, report
    assert result.problems == [], report
