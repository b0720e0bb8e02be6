"""Writes for channels and rules (the API and the console call these), and the test notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from alerts import channels, messages
from alerts.choices import NotificationKind
from alerts.models import GLOBAL_RULE_KEY, AlertRule, Channel, Incident, Notification
from alerts.outbox import forget_cached_rules
from core.alerting import parse_silence_windows
from scheduler_project.errors import DomainError, ErrorCode
from tasks.models import Task

CHANNEL_FIELDS = ("name", "enabled", "mute_until", "rate_limit", "rate_window_seconds")
RULE_FIELDS = ("enabled", "on_failure", "consecutive_failures", "on_skip", "on_recovery", "duration_factor",
               "silence_windows", "mute_until", "on_executor_unhealthy", "no_leader_seconds", "on_node_stale")


def _get(queryset, noun: str, pk: str):
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"{noun} '{pk}' does not exist")
    return found


def get_channel(channel_id: str) -> Channel:
    return _get(Channel.objects, "alert channel", channel_id)


def get_rule(rule_id: str) -> AlertRule:
    return _get(AlertRule.objects.select_related("task").prefetch_related("channels"), "alert rule", rule_id)


def get_incident(incident_id: str) -> Incident:
    return _get(Incident.objects, "incident", incident_id)


def check_url(url: str) -> None:
    problem = channels.url_problem(url)
    if problem:
        raise DomainError.invalid("url", problem, "channel_url")


@transaction.atomic
def channel_save(*, channel: Channel | None = None, data: dict[str, Any]) -> Channel:
    """Create (``channel`` None; ``url`` required) or update a channel. A URL left out keeps the stored one."""
    channel = channel or Channel()
    if "url" in data:
        check_url(data["url"])
        channel.url = data["url"]
    elif not channel.url_encrypted:
        raise DomainError.invalid("url", "This field is required.", "required")
    for field in CHANNEL_FIELDS:
        if field in data:
            setattr(channel, field, data[field])
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError:
        raise DomainError(ErrorCode.CONFLICT, f"an alert channel named '{channel.name}' exists already",
                          {"field": "name"}) from None
    return channel


def channel_delete(*, channel_id: str) -> None:
    get_channel(channel_id).delete()


def channel_test(*, channel_id: str, now: datetime) -> Notification:
    """Queue a test notification: the leader sends it within its next alert pass, past mutes and rate
    limits, and its status (sent, or the error) shows in the channel's notifications."""
    channel = get_channel(channel_id)
    text = messages.trial_text(channel.name, now)
    return Notification.objects.create(channel=channel, kind=NotificationKind.TEST, title=text.title,
                                       body=text.body, event_at=now, created_at=now, next_attempt_at=now)


@transaction.atomic
def rule_save(*, rule: AlertRule | None = None, data: dict[str, Any]) -> AlertRule:
    """Create or update a rule. ``task_id`` (create only) None makes the global rule; one rule per scope. A
    task's new rule starts as a copy of the global one, so it differs only where ``data`` says."""
    inherited_channels = None
    if rule is None:
        rule = AlertRule()
        task_id = data.get("task_id")
        if task_id is not None:
            task = Task.objects.filter(pk=task_id).first()
            if task is None:
                raise DomainError(ErrorCode.TASK_NOT_FOUND, f"task '{task_id}' does not exist")
            rule, inherited_channels = _copy_of_global(), _global_channels()
            rule.task = task
    if "silence_windows" in data:
        try:
            parse_silence_windows(data["silence_windows"])
        except ValueError as exc:
            raise DomainError.invalid("silence_windows", str(exc), "silence_windows") from None
    for field in RULE_FIELDS:
        if field in data:
            setattr(rule, field, data[field])
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        scope = "the global rule" if rule.task_id is None else f"a rule for task '{rule.task_id}'"
        raise DomainError(ErrorCode.CONFLICT, f"{scope} exists already: update it", {"field": "task_id"}) from None
    if "channel_ids" in data:
        rule.channels.set(_channels(data["channel_ids"]))
    elif inherited_channels:
        rule.channels.set(inherited_channels)
    transaction.on_commit(forget_cached_rules)
    return rule


def _copy_of_global() -> AlertRule:
    saved = AlertRule.objects.filter(key=GLOBAL_RULE_KEY).first()
    return AlertRule(**{field: getattr(saved, field) for field in RULE_FIELDS}) if saved else AlertRule()


def _global_channels() -> list[Channel]:
    return list(Channel.objects.filter(rules__key=GLOBAL_RULE_KEY))


def _channels(ids: list[str]) -> list[Channel]:
    found = list(Channel.objects.filter(pk__in=ids))
    unknown = sorted(set(ids) - {channel.pk for channel in found})
    if unknown:
        raise DomainError.invalid("channel_ids", f"no alert channel '{unknown[0]}'", "exists")
    return found


def rule_delete(*, rule_id: str) -> None:
    get_rule(rule_id).delete()
    forget_cached_rules()
