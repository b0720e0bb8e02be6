"""The executions' Prometheus counters, incremented where a run ends, retries or times out (exposed by
``monitoring.prometheus``)."""

from prometheus_client import Counter

EXECUTIONS_FINISHED = Counter(
    "scheduler_executions_finished_total", "Executions that reached a final status, by that status.", ["status"]
)
RETRIES = Counter("scheduler_retries_total", "Retry attempts scheduled after a failure or timeout.")
TIMEOUTS = Counter("scheduler_timeouts_total", "Running executions marked timeout by the sweep.")


def count_finished(status: str) -> None:
    EXECUTIONS_FINISHED.labels(status=status).inc()


def count_retry() -> None:
    RETRIES.inc()


def count_timeout() -> None:
    TIMEOUTS.inc()
