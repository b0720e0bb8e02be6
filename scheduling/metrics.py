"""Prometheus metrics.

Two kinds:

- The engine's own events, counted where they happen (one-line calls: ``count_finished(status)``,
  ``observe_dispatch_latency(seconds)``...). They live in the process that does the work: the scheduler
  serves them on its own port (``start_metrics_server``), the web workers on ``/metrics``.
- The database's state, read at scrape time by ``DatabaseCollector`` (executions by status, executors,
  leader present), so every node reports the same truth however the rows changed.

``/metrics`` (``metrics_view``): with ``PROMETHEUS_MULTIPROC_DIR`` set (several gunicorn workers), the
workers' values are merged from that directory by ``MultiProcessCollector``; otherwise this process's
default registry is exposed. The database gauges are added either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from django.db import DatabaseError, connections
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core.clock import utc_now
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.choices import ExecutorStatus
from executors.models import Executor
from scheduler_project.security import metrics_token_accepted
from scheduling.selectors import current_leader

logger = logging.getLogger(__name__)

_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

EXECUTIONS_FINISHED = Counter(
    "scheduler_executions_finished_total", "Executions that reached a final status, by that status.", ["status"]
)
DISPATCH_LATENCY = Histogram(
    "scheduler_dispatch_latency_seconds", "From claiming an execution to an executor accepting it.",
    buckets=_SECONDS_BUCKETS,
)
FIRE_LATENESS = Histogram(
    "scheduler_fire_lateness_seconds", "Fire time minus scheduled time.", buckets=_LATENESS_BUCKETS
)
RETRIES = Counter("scheduler_retries_total", "Retry attempts scheduled after a failure or timeout.")
TIMEOUTS = Counter("scheduler_timeouts_total", "Running executions marked timeout by the sweep.")
# livemax: merged over live processes, a leader that exited no longer counts (multiprocess mode).
IS_LEADER = Gauge("scheduler_is_leader", "1 while this scheduler process leads.", multiprocess_mode="livemax")
TICK_DURATION = Histogram(
    "scheduler_tick_duration_seconds", "Duration of one scheduler tick.", buckets=_SECONDS_BUCKETS
)


def count_finished(status: str) -> None:
    EXECUTIONS_FINISHED.labels(status=status).inc()


def observe_dispatch_latency(seconds: float) -> None:
    DISPATCH_LATENCY.observe(max(0.0, seconds))


def observe_fire_lateness(seconds: float) -> None:
    # Clocks of different nodes may disagree by a little: early shows as on time.
    FIRE_LATENESS.observe(max(0.0, seconds))


def count_retry() -> None:
    RETRIES.inc()


def count_timeout() -> None:
    TIMEOUTS.inc()


def set_leader(leading: bool) -> None:
    IS_LEADER.set(1 if leading else 0)


def observe_tick(seconds: float) -> None:
    TICK_DURATION.observe(max(0.0, seconds))


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time. A database that cannot be read yields only
    ``scheduler_database_up 0``, so the scrape itself still succeeds."""

    # Collaborator as an attribute (DRF style): tests swap the clock without patching.
    clock: Callable[[], datetime] = staticmethod(utc_now)

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not query the database (the default registry would collect).
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("scheduler_database_up", "1 if the database answered this scrape.")
        try:
            families = self._families()
            self._fill(*families, now=self.clock())
        except DatabaseError as exc:
            logger.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("scheduler_executions", "Executions by status.", labels=["status"]),
            GaugeMetricFamily("scheduler_executions_pending", "Executions waiting to be dispatched."),
            GaugeMetricFamily("scheduler_executions_running", "Executions running now."),
            GaugeMetricFamily("scheduler_executors", "Executors by status.", labels=["status"]),
            GaugeMetricFamily("scheduler_executors_healthy", "Online executors passing health checks."),
            GaugeMetricFamily("scheduler_executors_unhealthy", "Online executors failing health checks."),
            GaugeMetricFamily("scheduler_leader_present", "1 if a scheduler node leads (fresh heartbeat)."),
        )

    @staticmethod
    def _fill(by_status, pending, running, executors, healthy, unhealthy, leader, *, now: datetime) -> None:
        counts = dict(TaskExecution.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in ExecutionStatus.values:
            by_status.add_metric([status], counts.get(status, 0))
        pending.add_metric([], counts.get(ExecutionStatus.PENDING, 0))
        running.add_metric([], counts.get(ExecutionStatus.RUNNING, 0))
        row = Executor.objects.aggregate(
            healthy=Count("id", filter=Q(status=ExecutorStatus.ONLINE, is_healthy=True)),
            unhealthy=Count("id", filter=Q(status=ExecutorStatus.ONLINE, is_healthy=False)),
            **{status: Count("id", filter=Q(status=status)) for status in ExecutorStatus.values},
        )
        for status in ExecutorStatus.values:
            executors.add_metric([status], row[status])
        healthy.add_metric([], row["healthy"])
        unhealthy.add_metric([], row["unhealthy"])
        leader.add_metric([], 1 if current_leader(now) is not None else 0)


class _Sources:
    """What one exposition reads: several collectors (or registries) as one ``collect()``."""

    def __init__(self, *sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def scrape_sources() -> _Sources:
    """The collectors behind ``/metrics`` for this process, chosen by ``PROMETHEUS_MULTIPROC_DIR``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged)
        return _Sources(merged, DatabaseCollector())
    return _Sources(REGISTRY, DatabaseCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format; with METRICS_TOKEN set, only for its bearer."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not metrics_token_accepted(request):
        return HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                            content_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(scrape_sources()), content_type=CONTENT_TYPE_LATEST)


def start_metrics_server(port: int, addr: str = "0.0.0.0", *, include_database: bool = False):  # noqa: S104
    """Serve this process's metrics on ``http://addr:port/metrics`` from a daemon thread (the scheduler
    calls it). Returns ``(server, thread)``. The database gauges are left out unless asked for: the web's
    ``/metrics`` already has them, and two sources of the same series only confuse dashboards. When
    included, each scrape runs its queries on a connection of its own, closed after the scrape."""
    registry = REGISTRY
    if include_database:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ScrapeConnection(_Sources(REGISTRY, DatabaseCollector())))
    return start_http_server(port, addr=addr, registry=registry)


class _ScrapeConnection(Collector):
    """Runs a collection with Django's connection handling, for threads outside request handling."""

    def __init__(self, inner: _Sources) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        # The exposition server runs each scrape on a thread of its own: the connection it opens would
        # outlive the thread, so it is closed here.
        try:
            yield from list(self.inner.collect())
        finally:
            connections.close_all()
