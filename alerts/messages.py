"""What a notification says: what happened, to which task or executor, when (the task's time zone and UTC),
a link to the run in the console, and the run's last log lines with secrets masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.alerting import Condition
from scheduler_project.config import tunable
from scheduler_project.redaction import mask_text

LOG_LINES = 10
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Text:
    title: str
    body: str


def when(moment: datetime, timezone: str = "UTC") -> str:
    utc = moment.astimezone(UTC)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    if zone is UTC or timezone == "UTC":
        return f"{utc:{TIME_FORMAT}} UTC"
    return f"{moment.astimezone(zone):{TIME_FORMAT}} {timezone} ({utc:{TIME_FORMAT}} UTC)"


def execution_link(execution_id: str) -> str:
    return f"{tunable('CONSOLE_BASE_URL').rstrip('/')}/admin/executions/taskexecution/{execution_id}/change/"


def workflow_run_link(run_id: str) -> str:
    return f"{tunable('CONSOLE_BASE_URL').rstrip('/')}/admin/workflows/workflowrun/{run_id}/change/"


def last_log_lines(logs: str, count: int = LOG_LINES) -> str:
    lines = [line for line in (logs or "").splitlines() if line.strip()][-count:]
    return mask_text("\n".join(lines))


_HEADLINES = {
    Condition.RUN_FAILED: "run {status}",
    Condition.CONSECUTIVE_FAILURES: "{streak} consecutive failures",
    Condition.FIRE_SKIPPED: "fire skipped",
    Condition.DURATION_ANOMALY: "run took {duration_s:.1f} s, {direction} than usual (median {median_s:.1f} s)",
}


def task_text(*, condition: str, recovered: bool, task, execution, occurred_at: datetime, facts: dict) -> Text:
    """A task's alert or recovery, about ``execution`` (None when there is no run to point at)."""
    headline = "recovered" if recovered else _HEADLINES[Condition(condition)].format(**facts)
    lines = [f"Task '{task.name}': {headline}."]
    if execution is not None:
        lines.append(f"Execution {execution.pk} (scheduled {when(execution.scheduled_time, task.timezone)}, "
                      f"attempt {execution.retry_count + 1}, status {execution.status}).")
    lines.append(f"When: {when(occurred_at, task.timezone)}.")
    if facts.get("cause"):
        lines.append(f"Cause: {mask_text(facts['cause'])}")
    if facts.get("retry_note"):
        lines.append(facts["retry_note"])
    if execution is not None:
        lines.append(f"Console: {execution_link(execution.pk)}")
        tail = last_log_lines(execution.logs) if not recovered else ""
        if tail:
            lines += ["Last log lines:", tail]
    marker = "RECOVERED" if recovered else "ALERT"
    return Text(f"[{marker}] {task.name}: {headline}", "\n".join(lines))


def cluster_text(*, condition: str, recovered: bool, subject_name: str, occurred_at: datetime,
                 detail: str) -> Text:
    """Executors, the leader, scheduler nodes and workflows."""
    what = {
        Condition.EXECUTOR_UNHEALTHY: ("executor {name} is unhealthy", "executor {name} is healthy again"),
        Condition.NO_LEADER: ("no scheduler led the cluster", "a scheduler leads again"),
        Condition.NODE_STALE: ("scheduler node {name} stopped heartbeating",
                               "scheduler node {name} heartbeats again"),
        Condition.WORKFLOW_FAILED: ("workflow {name} failed", "workflow {name} succeeded again"),
    }[Condition(condition)][1 if recovered else 0].format(name=subject_name)
    marker = "RECOVERED" if recovered else "ALERT"
    body = f"{what[0].upper()}{what[1:]}.\nWhen: {when(occurred_at)}."
    if detail:
        body += f"\n{detail}"
    return Text(f"[{marker}] {what}", body)


def digest_text(titles: list[str], window_seconds: int) -> Text:
    shown = titles[:50]
    more = f"\n... and {len(titles) - len(shown)} more" if len(titles) > len(shown) else ""
    body = (f"{len(titles)} notification(s) were held back by this channel's rate limit "
            f"(per {window_seconds} s):\n" + "\n".join(f"- {title}" for title in shown) + more)
    return Text(f"[DIGEST] {len(titles)} held notification(s)", body)


def trial_text(channel_name: str, now: datetime) -> Text:
    return Text("[TEST] scheduler alerts", f"A test notification to channel '{channel_name}', sent {when(now)}.")
