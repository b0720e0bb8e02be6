"""A node whose clock is 30 s ahead (libfaketime, as ``faketime -f +30s``) refuses to lead, says why in its log,
its heartbeat row and /scheduler/status, while a node with a correct clock leads; it still refuses once that node
is gone.

Needs ``faketime`` (Debian package ``faketime``; scripts/bootstrap.sh installs it) and a database with a
server clock to measure against (MariaDB/MySQL or PostgreSQL; SQLite has none).
"""

from __future__ import annotations

import re
import signal
import time

import pytest
from django.db import connection

from scheduling.models import SchedulerInstance
from tests.processes import LIBFAKETIME, clock_ahead

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.e2e,
    pytest.mark.skipif(not LIBFAKETIME,
                       reason="faketime is not installed (apt-get install faketime; scripts/bootstrap.sh does it)"),
    pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                       reason="needs a database server's clock to measure against; SQLite has none"),
]



def row(instance_id: str) -> SchedulerInstance | None:
    return SchedulerInstance.objects.filter(instance_id=instance_id).first()


def refusing(instance_id: str) -> SchedulerInstance | None:
    found = row(instance_id)
    return found if found is not None and found.leadership_refusal else None


def test_a_node_30_seconds_ahead_refuses_to_lead_while_a_correct_node_leads(cluster):
    cluster.start(schedulers=(), executors=(), wait_leader=False)
    skewed = cluster.schedulers["skewed"] = cluster.procs.start_scheduler("skewed", **clock_ahead(30))

    refused = cluster.wait_until(lambda: refusing("skewed"), 30, "the skewed node to record its refusal")
    assert refused.clock_offset_seconds == pytest.approx(-30, abs=1) and not refused.is_leader
    assert "ahead of the database's" in refused.leadership_refusal
    assert re.search(r"scheduler skewed refuses to lead: its clock is (29\.9|30\.0)\d* s ahead of the database's",
                     skewed.log_text())
    assert cluster.leaders() == []

    cluster.schedulers["good"] = cluster.procs.start_scheduler("good")
    assert cluster.wait_one_leader(30) == "good"
    good = row("good")
    assert abs(good.clock_offset_seconds) < 1 and good.leadership_refusal == "" and good.leader_term >= 1
    status = {node["instance_id"]: node for node in cluster.client.scheduler_status()["instances"]}
    assert status["skewed"]["leadership_refusal"] == refused.leadership_refusal
    assert status["skewed"]["is_leader"] is False and status["good"]["is_leader"] is True

    cluster.schedulers["good"].send(signal.SIGKILL)  # frees the lock at once: the skewed node could take it
    until = time.monotonic() + 3  # 15 of its election attempts (every 0.2 s)
    while time.monotonic() < until:
        assert cluster.leaders() in ([], ["good"]) and not row("skewed").is_leader
        time.sleep(0.1)
    assert skewed.alive and "is now the leader" not in skewed.log_text()
