"""The scheduling controls end to end: real web server, scheduler and journalling SDK executors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.e2e

EVERY_2_SECONDS = "*/2 * * * * *"


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_replace_stops_the_old_run_on_its_executor_before_the_new_one_starts(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("sleep.replace", cron=EVERY_2_SECONDS, execution_mode="replace", timeout_seconds=60,
                             max_retry=0, parameters={"seconds": 30})

    def two_started():
        starts = executor.events("start")
        return starts if len(starts) >= 2 else None

    starts = cluster.wait_until(two_started, 30, "a second run to start")
    first, second = starts[0]["execution_id"], starts[1]["execution_id"]
    [stop] = executor.events("stop", first)
    [execute] = executor.events("execute", second)
    assert stop["t"] <= execute["t"], "the new run reached the executor before the old one was stopped"
    cluster.wait_until(lambda: executor.events("cancelled", first), 10, "the old handler to see its cancellation")
    # The old handler ended, cancelled, before the new run arrived: by the stop, or by a lease renewal that
    # found the run cancelled and reached the executor first (then the stop finds nothing left to stop).
    [ended] = executor.events("end", first)
    assert ended["outcome"] == "cancelled" and ended["t"] <= execute["t"]
    assert stop["body"]["stopping"] is True or ended["t"] <= stop["t"]
    old = cluster.executions(task["id"], pk=first)[0]
    assert old.status == "cancelled" and "replaced by the fire at" in old.logs
    assert not cluster.duplicate_fires()


def test_backfill_twice_creates_the_runs_once_and_runs_them_with_the_task_mode(cluster):
    cluster.start(executors=["ex-a"])
    executor = cluster.executors["ex-a"]
    task = cluster.make_task("echo.backfill", execution_mode="sequential")  # never fires by itself soon
    cluster.client.update_task(task["id"], cron_expression="0 0 * * * *")
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=5)
    first = cluster.client.backfill_task(task["id"], iso(start), iso(end))
    second = cluster.client.backfill_task(task["id"], iso(start), iso(end))
    assert (first["created"], first["existing"]) == (6, 0)
    assert (second["created"], second["existing"]) == (0, 6)

    runs = cluster.wait_until(
        lambda: (rows := cluster.executions(task["id"], trigger_type="backfill")) and
        all(r.status == "success" for r in rows) and rows, 30, "every backfilled run to succeed")
    assert [r.scheduled_time for r in runs] == [start + timedelta(hours=h) for h in range(6)]
    executed = executor.events("execute")
    assert [e["scheduled_time"] for e in executed] == [iso(r.scheduled_time) for r in runs], "in order, once each"
    for before, after in zip(runs, runs[1:], strict=False):
        assert after.start_time >= before.end_time, "sequential: one at a time"


def test_broadcast_runs_one_shard_on_each_of_three_executors(cluster):
    cluster.start(executors=["ex-a", "ex-b", "ex-c"])
    task = cluster.make_task("echo.broadcast", executors=["ex-a", "ex-b", "ex-c"],
                             load_balance_strategy="broadcast")
    parent_id = cluster.client.trigger_task(task["id"])["id"]

    def settled():
        parent = cluster.executions(task["id"], pk=parent_id)[0]
        return parent if parent.status not in ("pending", "running") else None

    parent = cluster.wait_until(settled, 30, "the broadcast run to end")
    assert parent.status == "success" and parent.shard_total == 3 and "3/3 shards succeeded" in parent.logs
    shards = cluster.executions(task["id"], shard__gt=0)
    assert sorted(s.shard_index for s in shards) == [0, 1, 2] and {s.status for s in shards} == {"success"}
    seen = {}
    for instance_id, executor in cluster.executors.items():
        [start] = executor.events("start")
        seen[instance_id] = (start["shard_index"], start["shard_total"])
        [shard] = [s for s in shards if s.pk == start["execution_id"]]
        assert shard.executor_id == cluster.executor_ids[instance_id]
    assert sorted(seen.values()) == [(0, 3), (1, 3), (2, 3)], "each executor got its own shard number"
