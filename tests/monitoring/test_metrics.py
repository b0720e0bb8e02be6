"""Metrics: GET /api/v1/scheduler/metrics (JSON) and GET /metrics (Prometheus text), including the
multiprocess mode and the scheduler's own exposition server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from executions import metrics as execution_metrics
from monitoring import prometheus as metrics
from scheduling import metrics as engine_metrics
from scheduling.models import SchedulerInstance
from tests.helpers import assert_ok, is_int, is_iso_z, is_number, same_instant

METRICS = "/api/v1/scheduler/metrics"

ENGINE_METRICS = [
    "scheduler_executions_finished_total",
    "scheduler_dispatch_latency_seconds",
    "scheduler_fire_lateness_seconds",
    "scheduler_retries_total",
    "scheduler_timeouts_total",
    "scheduler_is_leader",
    "scheduler_tick_duration_seconds",
]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(api, path: str = "/metrics") -> str:
    response = api.client.get(path)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.fixture
def known(make_task, make_executor, make_execution):
    """A data set whose counts the tests know: 3 pending, 2 running, finals today and yesterday, executors in
    every state, and a leader with a fresh heartbeat."""
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = day_start - timedelta(seconds=1)
    task = make_task()
    online = make_executor(status="online", is_healthy=True)
    make_executor(status="online", is_healthy=True)
    make_executor(status="online", is_healthy=False)
    make_executor(status="offline", is_healthy=False)
    make_executor(status="maintenance", is_healthy=True)
    for _ in range(3):
        make_execution(task=task, status="pending")
    for _ in range(2):
        make_execution(task=task, status="running", executor=online, start_time=now)
    for status, count in (("success", 4), ("failed", 2), ("timeout", 1), ("cancelled", 1), ("skipped", 1)):
        for _ in range(count):
            make_execution(task=task, status=status, end_time=now)
    for status in ("success", "failed"):  # finished before today (UTC): not "completed today"
        make_execution(task=task, status=status, end_time=yesterday)
    leader = SchedulerInstance.objects.create(instance_id="node-1", host="10.0.0.1", port=8000, is_leader=True,
                                              leader_since=now - timedelta(minutes=5))
    SchedulerInstance.objects.create(instance_id="node-2", host="10.0.0.2", port=8000)
    return {"now": now, "leader": leader}


# --- /api/v1/scheduler/metrics --------------------------------------------------------------------------------


def test_api_metrics_report_node_resources(api, known):
    node = assert_ok(*api.get(METRICS))["node"]
    assert isinstance(node["hostname"], str) and node["hostname"]
    assert is_number(node["cpu_percent"]) and 0 <= node["cpu_percent"] <= 100
    assert is_int(node["cpu_count"]) and node["cpu_count"] >= 1
    memory, disk = node["memory"], node["disk"]
    assert is_int(memory["total_bytes"]) and memory["total_bytes"] > 0
    assert 0 <= memory["used_bytes"] <= memory["total_bytes"]
    assert 0 < memory["available_bytes"] <= memory["total_bytes"]
    assert 0 <= memory["percent"] <= 100
    assert disk["path"] == str(settings.BASE_DIR)
    assert disk["total_bytes"] > 0 and 0 <= disk["free_bytes"] <= disk["total_bytes"]
    assert 0 <= disk["percent"] <= 100


def test_api_metrics_count_executions_and_completed_today(api, known):
    data = assert_ok(*api.get(METRICS + "/"))
    executions = data["executions"]
    assert (executions["pending"], executions["running"]) == (3, 2)
    assert executions["completed_today"] == {"total": 9, "success": 4, "failed": 2, "timeout": 1,
                                             "cancelled": 1, "skipped": 1}
    assert is_iso_z(data["timestamp"])


def test_api_metrics_name_the_leader_and_since_when(api, known):
    leader = assert_ok(*api.get(METRICS))["leader"]
    assert (leader["instance_id"], leader["host"]) == ("node-1", "10.0.0.1")
    assert same_instant(leader["since"], known["leader"].leader_since)


def test_api_metrics_without_a_live_leader_say_null(api, known):
    SchedulerInstance.objects.filter(instance_id="node-1").update(updated_at=known["now"] - timedelta(hours=1))
    data = assert_ok(*api.get(METRICS))
    assert data["leader"] is None
    assert data["executions"]["completed_today"]["total"] == 9


def test_completed_today_is_the_utc_day_of_now(make_task, make_execution):
    from monitoring.selectors import completed_on_day

    task = make_task()
    noon = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)
    make_execution(task=task, status="success", end_time=datetime(2031, 3, 10, 0, 0, tzinfo=UTC))
    make_execution(task=task, status="failed", end_time=datetime(2031, 3, 10, 23, 59, 59, tzinfo=UTC))
    make_execution(task=task, status="success", end_time=datetime(2031, 3, 9, 23, 59, 59, tzinfo=UTC))
    make_execution(task=task, status="success", end_time=datetime(2031, 3, 11, 0, 0, tzinfo=UTC))
    make_execution(task=task, status="running", end_time=datetime(2031, 3, 10, 8, 0, tzinfo=UTC))
    counts = completed_on_day(noon)
    assert (counts["total"], counts["success"], counts["failed"]) == (2, 1, 1)


# --- /metrics -------------------------------------------------------------------------------------------------


def test_prometheus_endpoint_lists_every_engine_metric(api, known):
    text = scrape(api)
    for name in ENGINE_METRICS:
        assert f"# TYPE {name} " in text, name


def test_prometheus_database_gauges_match_the_data(api, known):
    values = samples(scrape(api))
    by_status = {"pending": 3, "running": 2, "success": 5, "failed": 3, "timeout": 1, "skipped": 1, "cancelled": 1}
    for status, count in by_status.items():
        assert values[("scheduler_executions", (("status", status),))] == count, status
    assert values[("scheduler_executions_pending", ())] == 3
    assert values[("scheduler_executions_running", ())] == 2
    for status, count in {"online": 3, "offline": 1, "maintenance": 1}.items():
        assert values[("scheduler_executors", (("status", status),))] == count, status
    assert values[("scheduler_executors_healthy", ())] == 2
    assert values[("scheduler_executors_unhealthy", ())] == 1
    assert values[("scheduler_leader_present", ())] == 1
    assert values[("scheduler_database_up", ())] == 1


def test_prometheus_leader_present_is_0_without_a_fresh_leader(api, known):
    SchedulerInstance.objects.filter(instance_id="node-1").update(updated_at=known["now"] - timedelta(hours=1))
    assert samples(scrape(api, "/metrics/"))[("scheduler_leader_present", ())] == 0


def test_prometheus_engine_counters_count_each_call(api, db):
    key = ("scheduler_executions_finished_total", (("status", "timeout"),))
    before = samples(scrape(api)).get(key, 0)
    retries_before = REGISTRY.get_sample_value("scheduler_retries_total")
    execution_metrics.count_finished("timeout")
    execution_metrics.count_finished("timeout")
    execution_metrics.count_retry()
    assert samples(scrape(api))[key] == before + 2
    assert REGISTRY.get_sample_value("scheduler_retries_total") == retries_before + 1


def test_engine_histograms_and_gauge_record_observations(db):
    def count(name: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_count")

    def bucket(name: str, le: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_bucket", {"le": le})

    lateness, first_bucket = count("scheduler_fire_lateness_seconds"), bucket("scheduler_fire_lateness_seconds", "0.01")
    engine_metrics.observe_fire_lateness(-2.0)  # a node whose clock runs ahead: counted as on time
    assert count("scheduler_fire_lateness_seconds") == lateness + 1
    assert bucket("scheduler_fire_lateness_seconds", "0.01") == first_bucket + 1
    dispatch = REGISTRY.get_sample_value("scheduler_dispatch_latency_seconds_sum")
    engine_metrics.observe_dispatch_latency(0.25)
    assert REGISTRY.get_sample_value("scheduler_dispatch_latency_seconds_sum") == pytest.approx(dispatch + 0.25)
    ticks = count("scheduler_tick_duration_seconds")
    engine_metrics.observe_tick(0.003)
    assert count("scheduler_tick_duration_seconds") == ticks + 1
    timeouts = REGISTRY.get_sample_value("scheduler_timeouts_total")
    execution_metrics.count_timeout()
    assert REGISTRY.get_sample_value("scheduler_timeouts_total") == timeouts + 1
    engine_metrics.set_leader(True)
    assert REGISTRY.get_sample_value("scheduler_is_leader") == 1
    engine_metrics.set_leader(False)
    assert REGISTRY.get_sample_value("scheduler_is_leader") == 0


def test_prometheus_scrape_survives_a_database_failure(db):
    collector = metrics.DatabaseCollector()

    def broken(*families, now):
        raise DatabaseError("server has gone away")

    collector._fill = broken
    families = {family.name: family for family in collector.collect()}
    assert list(families) == ["scheduler_database_up"]
    assert families["scheduler_database_up"].samples[0].value == 0


def test_prometheus_endpoint_refuses_writes(api, db):
    assert api.client.post("/metrics").status_code == 405


def test_multiprocess_mode_merges_the_workers_files(api, known, tmp_path, monkeypatch):
    # A "worker" process counts with PROMETHEUS_MULTIPROC_DIR set; this process then serves /metrics from
    # that directory (its own in-memory values, not in multiprocess mode, must not show).
    worker = (
        "import django; django.setup()\n"
        "from executions import metrics\n"
        "metrics.count_finished('success'); metrics.count_finished('success'); metrics.count_retry()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "scheduler_project.settings"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, cwd=settings.BASE_DIR, check=True, timeout=60)
    assert list(tmp_path.glob("counter_*.db"))
    execution_metrics.count_finished("success")  # in memory only: not part of the merged view
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    values = samples(scrape(api))
    assert values[("scheduler_executions_finished_total", (("status", "success"),))] == 4
    assert values[("scheduler_retries_total", ())] == 2
    assert values[("scheduler_executions_running", ())] == 2  # the database gauges are there too


# --- the scheduler's own exposition server --------------------------------------------------------------------


@pytest.fixture
def metrics_server():
    started = []

    def start(**options):
        server, thread = metrics.start_metrics_server(0, "127.0.0.1", **options)
        started.append(server)
        return f"http://127.0.0.1:{server.server_port}/metrics"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_metrics_server_serves_the_engine_metrics_without_database_gauges(metrics_server, db):
    engine_metrics.observe_tick(0.01)
    response = requests.get(metrics_server(), timeout=5)
    assert response.status_code == 200
    values = samples(response.text)
    assert values[("scheduler_tick_duration_seconds_count", ())] >= 1
    assert not any(name.startswith("scheduler_executions_running") for name, _ in values)


@pytest.mark.django_db(transaction=True)
def test_metrics_server_can_add_the_database_gauges(metrics_server, make_execution):
    make_execution(status="running", start_time=timezone.now())
    response = requests.get(metrics_server(include_database=True), timeout=10)
    assert response.status_code == 200
    values = samples(response.text)
    assert values[("scheduler_executions_running", ())] == 1
    assert values[("scheduler_database_up", ())] == 1
