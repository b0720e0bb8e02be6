"""The executions' Prometheus counters, incremented where a run ends, retries or times out (exposed by
``monitoring.prometheus``)."""

from prometheus_client import Counter

EXECUTIONS_FINISHED = Counter(
    "scheduler_executions_finished_total", "Executions that reached a final status, by that status.", ["status"]
)
RETRIES = Counter("scheduler_retries_total", "Retry attempts scheduled after a failure or timeout.")
TIMEOUTS = Counter("scheduler_timeouts_total", "Running executions marked timeout by the sweep.")
LOST = Counter("scheduler_executions_lost_total",
               "Running executions failed as lost: their lease ran out, or their executor no longer held them.")
LATE_RESULTS = Counter("scheduler_late_results_total",
                       "Results finished within the deadline that arrived after the scheduler ended the run: "
                       "applied, or only recorded on the run because a retry had started.", ["outcome"])


def count_finished(status: str) -> None:
    EXECUTIONS_FINISHED.labels(status=status).inc()


def count_retry() -> None:
    RETRIES.inc()


def count_timeout() -> None:
    TIMEOUTS.inc()


def count_lost() -> None:
    LOST.inc()


def count_late_result(outcome: str) -> None:
    LATE_RESULTS.labels(outcome=outcome).inc()
