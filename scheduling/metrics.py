"""The engine's Prometheus instruments: dispatch latency, fire lateness, leadership and tick duration (exposed
by ``monitoring.prometheus``)."""

from prometheus_client import Gauge, Histogram

_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

DISPATCH_LATENCY = Histogram(
    "scheduler_dispatch_latency_seconds", "From claiming an execution to an executor accepting it.",
    buckets=_SECONDS_BUCKETS,
)
FIRE_LATENESS = Histogram(
    "scheduler_fire_lateness_seconds", "Fire time minus scheduled time.", buckets=_LATENESS_BUCKETS
)
# livemax: merged over live processes, a leader that exited no longer counts (multiprocess mode).
IS_LEADER = Gauge("scheduler_is_leader", "1 while this scheduler process leads.", multiprocess_mode="livemax")
TICK_DURATION = Histogram(
    "scheduler_tick_duration_seconds", "Duration of one scheduler tick.", buckets=_SECONDS_BUCKETS
)


def observe_dispatch_latency(seconds: float) -> None:
    DISPATCH_LATENCY.observe(max(0.0, seconds))


def observe_fire_lateness(seconds: float) -> None:
    # Clocks of different nodes may disagree by a little: early shows as on time.
    FIRE_LATENESS.observe(max(0.0, seconds))


def set_leader(leading: bool) -> None:
    IS_LEADER.set(1 if leading else 0)


def observe_tick(seconds: float) -> None:
    TICK_DURATION.observe(max(0.0, seconds))
