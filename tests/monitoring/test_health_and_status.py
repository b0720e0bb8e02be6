"""Spec 000 §8: /health and /scheduler/status, from SchedulerInstance rows and the live tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling.models import SchedulerInstance
from tests.helpers import assert_ok, is_int, is_iso_z, parse_iso, same_instant

HEALTH = "/api/v1/health"
STATUS = "/api/v1/scheduler/status"
STALE_SECONDS = 30


@pytest.fixture(autouse=True)
def stale_after_30_seconds(settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "INSTANCE_STALE_SECONDS": STALE_SECONDS}


def instance(instance_id: str, *, leader: bool = False, age: timedelta = timedelta(0), since=None, **fields):
    row = SchedulerInstance.objects.create(instance_id=instance_id, host=fields.pop("host", "192.168.1.10"),
                                           port=fields.pop("port", 8080), is_leader=leader, leader_since=since)
    if age:
        SchedulerInstance.objects.filter(pk=row.pk).update(updated_at=timezone.now() - age)
        row.refresh_from_db()
    return row


# --- /health --------------------------------------------------------------------------------------------------


def test_health_envelope_and_field_types_follow_the_spec(api):
    data = assert_ok(*api.get(HEALTH))
    assert set(data) == {"status", "timestamp", "components"}
    assert data["status"] in {"healthy", "degraded"}
    assert is_iso_z(data["timestamp"])
    components = data["components"]
    assert {"database", "scheduler", "executors"} <= set(components)
    database, scheduler, executors = components["database"], components["scheduler"], components["executors"]
    assert database["status"] == "healthy" and is_int(database["response_time"]) and database["response_time"] >= 0
    assert {"status", "is_leader", "active_tasks"} <= set(scheduler)
    assert isinstance(scheduler["is_leader"], bool) and is_int(scheduler["active_tasks"])
    assert {"status", "total", "online", "offline"} <= set(executors)
    for key in ("total", "online", "offline"):
        assert is_int(executors[key]), key


def test_health_is_healthy_with_a_fresh_leader_and_an_online_executor(api, make_executor, make_task):
    instance("sched-001", leader=True, since=timezone.now() - timedelta(hours=1))
    make_executor(status="online")
    make_executor(status="offline")
    make_executor(status="maintenance")
    make_task(status="active")
    make_task(status="active")
    make_task(status="paused")
    data = assert_ok(*api.get(HEALTH))
    assert data["status"] == "healthy"
    scheduler = data["components"]["scheduler"]
    assert (scheduler["status"], scheduler["is_leader"], scheduler["active_tasks"]) == ("healthy", True, 2)
    executors = data["components"]["executors"]
    assert (executors["status"], executors["total"], executors["online"], executors["offline"]) == (
        "healthy", 3, 1, 2,
    )


def test_health_is_degraded_without_a_leader(api, make_executor):
    make_executor(status="online")
    data = assert_ok(*api.get(HEALTH))
    assert data["status"] == "degraded"
    assert data["components"]["scheduler"]["is_leader"] is False
    assert data["components"]["scheduler"]["status"] != "healthy"


def test_health_does_not_count_a_stale_leader(api, make_executor):
    instance("sched-001", leader=True, age=timedelta(seconds=STALE_SECONDS * 4))
    make_executor(status="online")
    data = assert_ok(*api.get(HEALTH))
    assert data["status"] == "degraded"
    assert data["components"]["scheduler"]["is_leader"] is False


def test_health_is_degraded_without_an_online_executor(api, make_executor):
    instance("sched-001", leader=True)
    make_executor(status="maintenance")
    data = assert_ok(*api.get(HEALTH))
    assert data["status"] == "degraded"
    assert data["components"]["executors"]["online"] == 0


# --- /scheduler/status ----------------------------------------------------------------------------------------


def test_scheduler_status_envelope_and_field_types_follow_the_spec(api):
    instance("sched-001", leader=True, since=timezone.now())
    data = assert_ok(*api.get(STATUS))
    assert set(data) == {"instances", "leader_info", "cluster_status", "system_metrics", "timestamp"}
    assert is_iso_z(data["timestamp"])
    [row] = data["instances"]
    assert {"id", "instance_id", "host", "port", "is_leader", "created_at", "updated_at"} <= set(row)
    assert isinstance(row["id"], str) and is_int(row["port"]) and isinstance(row["is_leader"], bool)
    assert is_iso_z(row["created_at"]) and is_iso_z(row["updated_at"])
    assert set(data["leader_info"]) == {"instance_id", "host", "since"}
    assert set(data["cluster_status"]) == {"total_instances", "healthy_instances", "has_leader"}
    assert set(data["system_metrics"]) == {
        "total_tasks", "active_tasks", "paused_tasks", "total_executors", "online_executors", "healthy_executors",
        "running_executions", "pending_executions",
    }
    assert all(is_int(value) for value in data["system_metrics"].values())


def test_scheduler_status_lists_instances_leader_first_and_describes_the_leader(api):
    since = timezone.now() - timedelta(hours=12)
    follower = instance("sched-002", host="192.168.1.11")
    leader = instance("sched-001", leader=True, since=since)
    data = assert_ok(*api.get(STATUS))
    assert [row["instance_id"] for row in data["instances"]] == ["sched-001", "sched-002"]
    first, second = data["instances"]
    assert (first["id"], first["host"], first["port"], first["is_leader"]) == (leader.pk, "192.168.1.10", 8080, True)
    assert (second["id"], second["is_leader"]) == (follower.pk, False)
    assert same_instant(first["created_at"], leader.created_at)
    assert data["leader_info"]["instance_id"] == "sched-001"
    assert data["leader_info"]["host"] == "192.168.1.10"
    assert parse_iso(data["leader_info"]["since"]) == since
    assert data["cluster_status"] == {"total_instances": 2, "healthy_instances": 2, "has_leader": True}


def test_scheduler_status_shows_each_nodes_term_clock_offset_and_why_it_refuses_to_lead(api):
    why = "its clock is 30.000 s ahead of the database's (±0.001 s), beyond SCHEDULER_MAX_CLOCK_OFFSET (2 s)"
    instance("sched-001", leader=True, since=timezone.now())
    SchedulerInstance.objects.filter(instance_id="sched-001").update(leader_term=7, clock_offset_seconds=0.0004)
    instance("sched-002")
    SchedulerInstance.objects.filter(instance_id="sched-002").update(clock_offset_seconds=-30.0,
                                                                      leadership_refusal=why)
    data = assert_ok(*api.get(STATUS))
    fields = [(row["leader_term"], row["clock_offset_seconds"], row["leadership_refusal"]) for row in data["instances"]]
    assert fields == [(7, 0.0004, ""), (None, -30.0, why)]


def test_scheduler_status_does_not_count_a_stale_leader(api):
    instance("sched-001", leader=True, since=timezone.now() - timedelta(hours=1), age=timedelta(minutes=5))
    instance("sched-002")
    data = assert_ok(*api.get(STATUS))
    assert data["leader_info"] is None
    assert data["cluster_status"] == {"total_instances": 2, "healthy_instances": 1, "has_leader": False}


def test_scheduler_status_leader_since_falls_back_to_the_last_heartbeat(api):
    leader = instance("sched-001", leader=True, since=None)
    data = assert_ok(*api.get(STATUS))
    assert same_instant(data["leader_info"]["since"], leader.updated_at)


def test_scheduler_status_without_instances(api):
    data = assert_ok(*api.get(STATUS))
    assert data["instances"] == [] and data["leader_info"] is None
    assert data["cluster_status"] == {"total_instances": 0, "healthy_instances": 0, "has_leader": False}


def test_scheduler_status_system_metrics_count_the_live_tables(api, make_task, make_executor, make_execution):
    for status in ("active", "active", "active", "paused", "deleted"):
        make_task(status=status)
    make_executor(status="online")
    make_executor(status="online", is_healthy=False)
    make_executor(status="offline")
    for status in ("running", "running", "pending", "success", "failed"):
        make_execution(status=status)
    metrics = assert_ok(*api.get(STATUS))["system_metrics"]
    # make_execution adds one active task per execution (5 more).
    assert metrics == {
        "total_tasks": 9, "active_tasks": 8, "paused_tasks": 1, "total_executors": 3, "online_executors": 2,
        "healthy_executors": 1, "running_executions": 2, "pending_executions": 1,
    }
