"""The leader's alert work, one pass at a time (``AlertDelivery.run_once``, started by the engine's
``deliver_alerts`` step on a worker thread):

1. ``check_nodes``: scheduler nodes whose heartbeat went stale (or came back) become events.
2. ``process_events``: each outbox event is claimed by compare-and-set (``processed_at`` NULL -> now) in the
   transaction that applies it: the incident is opened, counted or resolved (``core.alerting``) and one
   notification per channel is written, pending or suppressed (silence window, mute).
3. ``send_due``: per channel, the rate limit decides what goes now, what is held and when the held ones go
   as one digest; each notification is claimed (pending -> sending, compare-and-set) before it is sent, so
   two nodes (a failover, a split brain) never both send it. A failed send waits with backoff and is tried
   again, up to ALERT_MAX_ATTEMPTS. A node killed while sending leaves its claim behind: after
   ALERT_SENDING_LEASE_SECONDS the claim is taken back and the notification sent again, with the same id
   (``X-Scheduler-Notification`` on our webhook), so a receiver can drop the repeat.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from alerts import channels, messages
from alerts.choices import FailureNotice, NotificationKind, NotificationStatus
from alerts.metrics import count_failed, count_sent
from alerts.models import GLOBAL_RULE_KEY, AlertEvent, AlertRule, Channel, Incident, Notification
from alerts.outbox import record_executor_health, record_node_heartbeat, record_run_end
from core.alerting import (
    Condition,
    IncidentAction,
    channel_budget,
    consecutive_failures_reached,
    decide_incident,
    delivery_retry_at,
    duration_anomaly,
    is_muted,
    is_silenced,
    parse_silence_windows,
)
from core.clock import utc_now
from core.states import UNSUCCESSFUL_STATUSES, ExecutionStatus
from executions.models import TaskExecution
from scheduler_project.config import tunable

logger = logging.getLogger(__name__)

EVENT_BATCH = 200
RECENT_DURATIONS = 20
TASK_CONDITIONS = (Condition.RUN_FAILED, Condition.CONSECUTIVE_FAILURES, Condition.FIRE_SKIPPED)


# --- rules ------------------------------------------------------------------------------------------

def global_rule() -> AlertRule:
    """The global rule, or one with the defaults when none was saved (alerts work out of the box)."""
    return AlertRule.objects.filter(key=GLOBAL_RULE_KEY).first() or AlertRule()


def task_rule(task_id: str) -> AlertRule | None:
    """The task's own rule, else the global one; None when the one that applies is disabled."""
    rule = AlertRule.objects.filter(key=f"task:{task_id}").first() or global_rule()
    return rule if rule.enabled else None


# --- events -> incidents -> notifications -------------------------------------------------------------

def process_events(now: datetime, limit: int = EVENT_BATCH) -> int:
    """Apply the oldest unprocessed events. Returns how many this call applied."""
    ids = list(AlertEvent.objects.filter(processed_at__isnull=True).order_by("id").values_list("id", flat=True)[:limit])
    return sum(process_event(event_id, now=now) for event_id in ids)


@transaction.atomic
def process_event(event_id: int, *, now: datetime) -> bool:
    """Claim one event and apply it, in one transaction: another node's claim wins and this does nothing."""
    if not AlertEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(processed_at=now):
        return False
    event = AlertEvent.objects.select_related("task", "executor", "execution").get(pk=event_id)
    _HANDLERS[event.condition](event, now)
    return True


def _on_run(event: AlertEvent, now: datetime) -> None:
    if event.task is None:
        return
    rule = task_rule(event.task_id)
    if rule is None:
        return
    if event.firing:
        _run_failed(event, rule, now)
    else:
        _run_succeeded(event, rule, now)


def _run_failed(event: AlertEvent, rule: AlertRule, now: datetime) -> None:
    final = not event.details.get("will_retry", False)
    status = event.details.get("status", "failed")
    retry_note = "A retry is scheduled." if not final else "No retry left."
    if rule.on_failure == FailureNotice.EACH or (rule.on_failure == FailureNotice.FINAL and final):
        facts = {"status": status, "retry_note": retry_note, "cause": _cause(event.execution)}
        _fire(event, rule, Condition.RUN_FAILED, facts, now)
    if final and rule.consecutive_failures:
        streak = failure_streak(event.task_id, rule.consecutive_failures + 1)
        if consecutive_failures_reached(streak, rule.consecutive_failures):
            _fire(event, rule, Condition.CONSECUTIVE_FAILURES, {"streak": streak, "retry_note": retry_note}, now)


def _run_succeeded(event: AlertEvent, rule: AlertRule, now: datetime) -> None:
    _recover(event, rule, TASK_CONDITIONS, now)
    if rule.duration_factor and event.execution is not None:
        _check_duration(event, rule, now)


def _recover(event: AlertEvent, rule: AlertRule, conditions, now: datetime) -> None:
    """Resolve the task's open incidents of ``conditions``; one recovery notification if any had alerted."""
    resolved = _resolve(f"task:{event.task_id}", conditions, now)
    if resolved and rule.on_recovery and any(incident.notified for incident in resolved):
        _notify_task(event, rule, resolved[0], NotificationKind.RECOVERY, {}, now)


def _check_duration(event: AlertEvent, rule: AlertRule, now: datetime) -> None:
    execution = event.execution
    recent = list(TaskExecution.objects.filter(task_id=event.task_id, status=ExecutionStatus.SUCCESS,
                                               duration_ms__isnull=False)
                  .exclude(pk=execution.pk).order_by("-scheduled_time")
                  .values_list("duration_ms", flat=True)[:RECENT_DURATIONS])
    anomaly = duration_anomaly(execution.duration_ms, recent, factor=rule.duration_factor)
    if anomaly is None:
        _recover(event, rule, (Condition.DURATION_ANOMALY,), now)
        return
    facts = {"duration_s": execution.duration_ms / 1000, "median_s": statistics.median(recent) / 1000,
             "direction": "longer" if anomaly == "slow" else "shorter"}
    _fire(event, rule, Condition.DURATION_ANOMALY, facts, now)


def _on_skip(event: AlertEvent, now: datetime) -> None:
    rule = task_rule(event.task_id) if event.task is not None else None
    if rule is not None and rule.on_skip:
        _fire(event, rule, Condition.FIRE_SKIPPED, {"cause": event.details.get("cause", "")}, now)


def failure_streak(task_id: str, limit: int) -> int:
    """How many of the task's latest fires (their last attempt each) ended unsuccessfully, up to ``limit``."""
    rows = (TaskExecution.objects.filter(task_id=task_id, status__in=[ExecutionStatus.SUCCESS,
                                                                      *UNSUCCESSFUL_STATUSES])
            .order_by("-scheduled_time", "-retry_count")
            .values_list("scheduled_time", "trigger_type", "status")[: limit * 4])
    seen, streak = set(), 0
    for scheduled, trigger, status in rows:
        if (scheduled, trigger) in seen:
            continue  # an earlier attempt of a fire already counted by its last one
        seen.add((scheduled, trigger))
        if status not in UNSUCCESSFUL_STATUSES or streak == limit:
            break
        streak += 1
    return streak


def _cause(execution: TaskExecution | None) -> str:
    if execution is None:
        return ""
    lines = [line for line in execution.logs.splitlines() if line.strip()]
    return lines[-1] if lines and execution.status != ExecutionStatus.SUCCESS else ""


# --- cluster conditions --------------------------------------------------------------------------------

def _on_executor(event: AlertEvent, now: datetime) -> None:
    rule = global_rule()
    if not (rule.enabled and rule.on_executor_unhealthy):
        return
    name = f"{event.details.get('name', '?')} ({event.details.get('instance_id', event.executor_id)})"
    failures = event.details.get("failures", 0)
    detail = f"{failures} health checks failed in a row." if event.firing else ""
    _cluster(event, rule, f"executor:{event.executor_id}", name, detail, now)


def _on_node(event: AlertEvent, now: datetime) -> None:
    rule = global_rule()
    if rule.enabled and rule.on_node_stale:
        detail = f"Last heartbeat: {event.details.get('last_heartbeat', '?')}."
        _cluster(event, rule, f"node:{event.node}", event.node, detail, now)


def _on_workflow(event: AlertEvent, now: datetime) -> None:
    """A workflow run failed, or succeeded: one incident per workflow, under the global rule's failure notice."""
    rule = global_rule()
    if not rule.enabled or rule.on_failure == FailureNotice.OFF:
        return
    details = event.details
    detail = (f"Run {details.get('run_id')}: {details.get('reason') or 'failed'}.\n"
              f"Console: {messages.workflow_run_link(details.get('run_id', ''))}") if event.firing else ""
    _cluster(event, rule, f"workflow:{details.get('workflow_id')}", details.get("name", "?"), detail, now)


def _on_no_leader(event: AlertEvent, now: datetime) -> None:
    """Reported once leadership is back (nobody delivers without a leader): an incident opened and resolved."""
    rule = global_rule()
    seconds = float(event.details.get("seconds", 0))
    if not (rule.enabled and rule.no_leader_seconds) or seconds < rule.no_leader_seconds:
        return
    detail = (f"No leader from {event.details.get('since')} for {seconds:.0f} s, until {event.node} took over. "
              "Fires due meanwhile follow their misfire policy.")
    text = messages.cluster_text(condition=event.condition, recovered=False, subject_name="",
                                 occurred_at=event.occurred_at, detail=detail)
    incident = Incident.objects.create(condition=event.condition, subject="cluster", summary=text.title[:500],
                                       opened_at=event.occurred_at, last_seen_at=now, resolved_at=now)
    _notify(rule, incident=incident, kind=NotificationKind.ALERT, text=text, event_at=event.occurred_at, now=now)


def _cluster(event: AlertEvent, rule: AlertRule, subject: str, name: str, detail: str, now: datetime) -> None:
    if event.firing:
        text = messages.cluster_text(condition=event.condition, recovered=False, subject_name=name,
                                     occurred_at=event.occurred_at, detail=detail)
        incident, action = _open_or_count(event, event.condition, subject, summary=text.title.removeprefix("[ALERT] "),
                                          now=now)
        if action is IncidentAction.OPEN:
            _notify(rule, incident=incident, kind=NotificationKind.ALERT, text=text, event_at=event.occurred_at,
                    now=now)
        return
    resolved = _resolve(subject, (Condition(event.condition),), now)
    if resolved and rule.on_recovery:
        text = messages.cluster_text(condition=event.condition, recovered=True, subject_name=name,
                                     occurred_at=event.occurred_at, detail="")
        _notify(rule, incident=resolved[0], kind=NotificationKind.RECOVERY, text=text,
                event_at=event.occurred_at, now=now)


def reconcile_recoveries(now: datetime) -> int:
    """A success that ended after the run behind an open task incident, but whose process did not yet know
    the incident was open (``alerts.outbox`` reads that once a second), gets its recovery event here."""
    recorded = 0
    incidents = (Incident.objects.filter(condition__in=TASK_CONDITIONS, resolved_at__isnull=True)
                 .select_related("last_execution"))
    for incident in incidents:
        failed = incident.last_execution
        since = failed.end_time if failed is not None and failed.end_time else incident.opened_at
        success = (TaskExecution.objects.filter(task_id=incident.task_id, status=ExecutionStatus.SUCCESS,
                                                end_time__gt=since).order_by("end_time").first())
        if success is not None and not AlertEvent.objects.filter(execution=success, processed_at__isnull=True).exists():
            record_run_end(success, will_retry=False, now=now, force=True)
            recorded += 1
    return recorded


def reconcile_executors(now: datetime) -> int:
    """Executors healthy again by a way other than health checks (re-registration resets the flag) get
    their recovery event, so their incident does not stay open and swallow the next outage as a repeat.
    Incidents of deleted executors are closed without a word."""
    recorded = 0
    incidents = (Incident.objects.filter(condition=Condition.EXECUTOR_UNHEALTHY, resolved_at__isnull=True)
                 .filter(Q(executor__isnull=True) | Q(executor__is_healthy=True)).select_related("executor"))
    for incident in incidents:
        if incident.executor is None:
            Incident.objects.filter(pk=incident.pk).update(open_key=None, resolved_at=now)
            continue
        record_executor_health(incident.executor, healthy=True, failures=0, now=now)
        recorded += 1
    return recorded


def check_nodes(heartbeats: list[tuple[str, datetime]], now: datetime) -> int:
    """Events for scheduler nodes whose heartbeat (``(instance id, last heartbeat)`` pairs) went stale, or came
    back while an incident is open."""
    rule = global_rule()
    if not (rule.enabled and rule.on_node_stale):
        return 0
    stale_before = now - timedelta(seconds=tunable("INSTANCE_STALE_SECONDS"))
    open_nodes = set(Incident.objects.filter(condition=Condition.NODE_STALE, resolved_at__isnull=True)
                     .values_list("subject", flat=True))
    recorded = 0
    for instance_id, heartbeat in heartbeats:
        stale = heartbeat < stale_before
        if stale != (f"node:{instance_id}" in open_nodes):
            record_node_heartbeat(instance_id=instance_id, stale=stale, last_heartbeat=heartbeat, now=now)
            recorded += 1
    return recorded


# --- incidents ----------------------------------------------------------------------------------------

def _open_or_count(event: AlertEvent, condition: str, subject: str, *, summary: str, now: datetime
                   ) -> tuple[Incident, IncidentAction]:
    """Open the (subject, condition) incident for ``event``, or count ``event`` on the one open."""
    key = f"{subject}|{condition}"
    incident = Incident.objects.select_for_update().filter(open_key=key).first()
    action = decide_incident(has_open=incident is not None, firing=True)
    if action is IncidentAction.REPEAT:
        Incident.objects.filter(pk=incident.pk).update(count=F("count") + 1, last_seen_at=now,
                                                       last_execution=event.execution_id or incident.last_execution_id)
        return incident, action
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                condition=condition, subject=subject, open_key=key, task_id=event.task_id,
                executor_id=event.executor_id, last_execution_id=event.execution_id, summary=summary[:500],
                opened_at=event.occurred_at, last_seen_at=now)
    except IntegrityError:  # opened meanwhile by another node: this occurrence is a repeat of it
        incident = Incident.objects.get(open_key=key)
        Incident.objects.filter(pk=incident.pk).update(count=F("count") + 1, last_seen_at=now)
        return incident, IncidentAction.REPEAT
    return incident, action


def _resolve(subject: str, conditions, now: datetime) -> list[Incident]:
    """Close the subject's open incidents of ``conditions``; each carries ``notified``: whether it had sent
    anything (a recovery is announced only after an alert)."""
    keys = [f"{subject}|{condition}" for condition in conditions]
    incidents = list(Incident.objects.select_for_update().filter(open_key__in=keys))
    if incidents:
        Incident.objects.filter(pk__in=[i.pk for i in incidents]).update(open_key=None, resolved_at=now)
    notified = set(Notification.objects.filter(incident__in=incidents, kind=NotificationKind.ALERT)
                   .values_list("incident_id", flat=True))
    for incident in incidents:
        incident.notified = incident.pk in notified
    return incidents


def _fire(event: AlertEvent, rule: AlertRule, condition: Condition, facts: dict, now: datetime) -> None:
    summary = f"{event.task.name}: {condition.value.replace('_', ' ')}"
    incident, action = _open_or_count(event, condition, f"task:{event.task_id}", summary=summary, now=now)
    if action is IncidentAction.OPEN:
        _notify_task(event, rule, incident, NotificationKind.ALERT, facts, now)


def _notify_task(event: AlertEvent, rule: AlertRule, incident: Incident, kind: str, facts: dict,
                 now: datetime) -> None:
    text = messages.task_text(condition=incident.condition, recovered=kind == NotificationKind.RECOVERY,
                              task=event.task, execution=event.execution, occurred_at=event.occurred_at,
                              facts=facts)
    _notify(rule, incident=incident, kind=kind, text=text, event_at=event.occurred_at, now=now,
            timezone=event.task.timezone)


def _notify(rule: AlertRule, *, incident: Incident | None, kind: str, text: messages.Text, event_at: datetime,
            now: datetime, timezone: str = "UTC") -> int:
    """One notification per channel of the rule (every enabled channel when it names none): pending, or
    suppressed when the rule's silence window or a mute says so (recorded, visible, never sent)."""
    targets = list(rule.channels.filter(enabled=True)) if rule.pk else []
    if not targets:
        targets = list(Channel.objects.filter(enabled=True))
    quiet = _quiet_reason(rule, now, timezone)
    rows = []
    for channel in targets:
        reason = quiet or ("channel muted" if is_muted(channel.mute_until, now) else "")
        rows.append(Notification(
            channel=channel, incident=incident, kind=kind, title=text.title[:255], body=text.body,
            status=NotificationStatus.SUPPRESSED if reason else NotificationStatus.PENDING, last_error=reason,
            event_at=event_at, created_at=now, next_attempt_at=now))
    Notification.objects.bulk_create(rows)
    return len(rows)


def _quiet_reason(rule: AlertRule, now: datetime, timezone: str) -> str:
    if is_muted(rule.mute_until, now):
        return "rule muted"
    try:
        windows = parse_silence_windows(rule.silence_windows)
        zone = ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        return ""
    return "silence window" if is_silenced(windows, now.astimezone(zone)) else ""


_HANDLERS: dict[str, Callable[[AlertEvent, datetime], None]] = {
    Condition.RUN_FAILED: _on_run,
    Condition.FIRE_SKIPPED: _on_skip,
    Condition.EXECUTOR_UNHEALTHY: _on_executor,
    Condition.NODE_STALE: _on_node,
    Condition.NO_LEADER: _on_no_leader,
    Condition.WORKFLOW_FAILED: _on_workflow,
}


# --- sending ---------------------------------------------------------------------------------------------

class AlertDelivery:
    """One pass of the leader's alert work. ``heartbeats()`` lists the scheduler nodes' (instance id, last
    heartbeat) (the engine owns that table); ``transport(url, message, signing_secret=...)`` and ``clock``
    are swappable for tests."""

    transport = staticmethod(channels.send)

    def __init__(self, *, heartbeats: Callable[[], list[tuple[str, datetime]]],
                 clock: Callable[[], datetime] = utc_now,
                 fenced: Callable[[], AbstractContextManager] = transaction.atomic) -> None:
        self.heartbeats = heartbeats
        self.clock = clock
        self.fenced = fenced  # the engine's leadership-term transaction (scheduling.leader.Fence.atomic)
        self._next_node_check: datetime | None = None

    def run_once(self, now: datetime) -> int:
        """Nodes, events, sends. Returns how many events and notifications it handled. (On a worker thread
        the engine's job wrapper refreshes the thread's connection first.)

        Which nodes are stale is the leader's judgement: it commits only within its term (``fenced``; a
        deposed leader's raises there, and its pass ends). The rest needs no term: events and notifications
        are claimed by compare-and-set, and the sweeps only restate what the rows say."""
        if self._next_node_check is None or now >= self._next_node_check:
            self._next_node_check = now + timedelta(seconds=tunable("HEARTBEAT_INTERVAL_SECONDS"))
            with self.fenced():
                check_nodes(self.heartbeats(), now)
            reconcile_executors(now)
            reconcile_recoveries(now)
        return process_events(now) + self.send_due(now)

    def send_due(self, now: datetime) -> int:
        self._take_back_stalled(now)
        channel_ids = set(Notification.objects.filter(
            status__in=[NotificationStatus.PENDING, NotificationStatus.HELD], next_attempt_at__lte=now,
        ).values_list("channel_id", flat=True))
        return sum(self._send_channel(channel, now) for channel in Channel.objects.filter(pk__in=channel_ids))

    def _take_back_stalled(self, now: datetime) -> None:
        lease = timedelta(seconds=tunable("ALERT_SENDING_LEASE_SECONDS"))
        taken = Notification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=now - lease).update(
            status=NotificationStatus.PENDING, last_error="claim expired: the sending node stopped")
        if taken:
            logger.warning("took back %s notification(s) whose sending node stopped mid-send", taken)

    def _send_channel(self, channel: Channel, now: datetime) -> int:
        due = list(Notification.objects.filter(channel=channel, status=NotificationStatus.PENDING,
                                               next_attempt_at__lte=now).order_by("created_at", "id"))
        always = [n for n in due if n.kind in (NotificationKind.DIGEST, NotificationKind.TEST)]
        waiting = [n for n in due if n.kind not in (NotificationKind.DIGEST, NotificationKind.TEST)]
        held = list(Notification.objects.filter(channel=channel, status=NotificationStatus.HELD)
                    .order_by("created_at", "id"))
        window_start = now - timedelta(seconds=channel.rate_window_seconds)
        sent = Notification.objects.filter(channel=channel, status=NotificationStatus.SENT, sent_at__gte=window_start
                                           ).exclude(kind=NotificationKind.TEST).count()
        budget = channel_budget(limit=channel.rate_limit, sent_in_window=sent, waiting=len(waiting), held=len(held))
        to_send = always + waiting[:budget.send]
        if budget.digest:
            to_send.append(self._digest(channel, held + waiting, now))
        else:
            self._hold(waiting[budget.send:])
        return sum(self._claim_and_send(channel, notification) for notification in to_send)

    def _hold(self, notifications: list[Notification]) -> None:
        Notification.objects.filter(pk__in=[n.pk for n in notifications], status=NotificationStatus.PENDING).update(
            status=NotificationStatus.HELD)

    @transaction.atomic
    def _digest(self, channel: Channel, notifications: list[Notification], now: datetime) -> Notification:
        text = messages.digest_text([n.title for n in notifications], channel.rate_window_seconds)
        digest = Notification.objects.create(
            channel=channel, kind=NotificationKind.DIGEST, title=text.title, body=text.body,
            event_at=min(n.event_at for n in notifications), created_at=now, next_attempt_at=now)
        Notification.objects.filter(
            pk__in=[n.pk for n in notifications],
            status__in=[NotificationStatus.PENDING, NotificationStatus.HELD]).update(
            status=NotificationStatus.DIGESTED, digest=digest)
        return digest

    def _claim_and_send(self, channel: Channel, notification: Notification) -> int:
        """Compare-and-set pending -> sending; only the winner sends."""
        claimed_at = self.clock()
        if not Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING).update(
                status=NotificationStatus.SENDING, claimed_at=claimed_at, attempts=F("attempts") + 1):
            return 0
        attempts = notification.attempts + 1
        message = channels.Message(notification.pk, notification.title, notification.body, notification.kind)
        try:
            self.transport(channel.url, message, signing_secret=channel.signing_secret)
        except channels.DeliveryError as exc:
            self._failed(channel, notification, attempts, exc.reason)
        except Exception as exc:  # a channel's bug must not stop the others; the reason never holds the URL
            self._failed(channel, notification, attempts, channels.scrub(f"{type(exc).__name__}: {exc}",
                                                                         channel.url))
        else:
            sent_at = self.clock()
            Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
                status=NotificationStatus.SENT, sent_at=sent_at, last_error="")
            count_sent(channel_kind(channel), (sent_at - notification.event_at).total_seconds())
        return 1

    def _failed(self, channel: Channel, notification: Notification, attempts: int, reason: str) -> None:
        now = self.clock()
        give_up = attempts >= tunable("ALERT_MAX_ATTEMPTS")
        retry_at = delivery_retry_at(now, attempts, base=tunable("ALERT_RETRY_BASE_SECONDS"),
                                     cap=tunable("ALERT_RETRY_MAX_SECONDS"))
        Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.FAILED if give_up else NotificationStatus.PENDING,
            next_attempt_at=retry_at, last_error=reason[:500])
        count_failed(channel_kind(channel))
        logger.warning("notification %s to channel %s failed (attempt %s%s): %s", notification.pk, channel.name,
                       attempts, ", giving up" if give_up else "", reason)


def channel_kind(channel: Channel) -> str:
    url = channel.url
    scheme = url.split("://", 1)[0].lower() if "://" in url else "unknown"
    return "webhook" if scheme.startswith(channels.SIGNED_PREFIX) else scheme
