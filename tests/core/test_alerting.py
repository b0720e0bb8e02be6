"""The pure alerting decisions, one row per case: incidents, silence windows, mutes, the per-channel budget,
duration anomalies, consecutive failures and delivery backoff."""

from datetime import UTC, datetime, time, timedelta

import pytest

from core.alerting import (
    Anomaly,
    ChannelBudget,
    IncidentAction,
    SilenceWindow,
    channel_budget,
    consecutive_failures_reached,
    decide_incident,
    delivery_retry_at,
    duration_anomaly,
    is_muted,
    is_silenced,
    parse_silence_windows,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("has_open", "firing", "action"), [
    (False, True, IncidentAction.OPEN),
    (True, True, IncidentAction.REPEAT),
    (True, False, IncidentAction.RESOLVE),
    (False, False, IncidentAction.IGNORE),
])
def test_one_open_incident_until_recovery(has_open, firing, action):
    assert decide_incident(has_open=has_open, firing=firing) is action


def test_a_failing_streak_opens_once_and_resolves_once():
    has_open, actions = False, []
    for firing in (True, True, True, False, False, True):
        action = decide_incident(has_open=has_open, firing=firing)
        actions.append(action)
        has_open = action in (IncidentAction.OPEN, IncidentAction.REPEAT)
    assert actions == [IncidentAction.OPEN, IncidentAction.REPEAT, IncidentAction.REPEAT, IncidentAction.RESOLVE,
                       IncidentAction.IGNORE, IncidentAction.OPEN]


@pytest.mark.parametrize(("text", "windows"), [
    ("", []),
    ("22:00-07:00", [SilenceWindow(time(22), time(7))]),
    (" 12:00 - 13:30 , 1:05-2:00", [SilenceWindow(time(12), time(13, 30)), SilenceWindow(time(1, 5), time(2))]),
])
def test_silence_windows_parse(text, windows):
    assert parse_silence_windows(text) == windows


@pytest.mark.parametrize("text", ["22-07", "24:00-01:00", "10:60-11:00", "10:00-10:00", "10:00-11:00,x"])
def test_bad_silence_windows_are_refused(text):
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the part, checked by the API tests
        parse_silence_windows(text)


@pytest.mark.parametrize(("windows", "local", "silenced"), [
    ("22:00-07:00", time(23, 30), True),
    ("22:00-07:00", time(3, 0), True),
    ("22:00-07:00", time(7, 0), False),  # the end is exclusive
    ("22:00-07:00", time(22, 0), True),  # the start inclusive
    ("22:00-07:00", time(12, 0), False),
    ("12:00-13:00", time(12, 59), True),
    ("12:00-13:00", time(13, 0), False),
    ("", time(3, 0), False),
])
def test_silence_windows_in_local_time(windows, local, silenced):
    moment = datetime.combine(NOW.date(), local)
    assert is_silenced(parse_silence_windows(windows), moment) is silenced


@pytest.mark.parametrize(("mute_until", "muted"), [
    (None, False), (NOW + timedelta(seconds=1), True), (NOW, False), (NOW - timedelta(hours=1), False),
])
def test_mute_until(mute_until, muted):
    assert is_muted(mute_until, NOW) is muted


@pytest.mark.parametrize(("limit", "sent", "waiting", "held", "budget"), [
    (None, 50, 7, 0, ChannelBudget(send=7, digest=False)),  # no limit
    (None, 0, 2, 3, ChannelBudget(send=0, digest=True)),  # held before a limit was lifted: one digest
    (5, 0, 3, 0, ChannelBudget(send=3, digest=False)),
    (5, 3, 4, 0, ChannelBudget(send=2, digest=False)),  # room for two; the caller holds the other two
    (5, 5, 2, 0, ChannelBudget(send=0, digest=False)),  # full: all held
    (5, 5, 2, 4, ChannelBudget(send=0, digest=False)),  # full with held ones: wait for room
    (5, 4, 2, 4, ChannelBudget(send=0, digest=True)),  # room for one message: the digest
])
def test_channel_budget(limit, sent, waiting, held, budget):
    assert channel_budget(limit=limit, sent_in_window=sent, waiting=waiting, held=held) == budget


@pytest.mark.parametrize(("duration", "recent", "factor", "anomaly"), [
    (1000, [1000] * 5, 3, None),
    (3001, [1000] * 5, 3, Anomaly.SLOW),
    (3000, [1000] * 5, 3, None),  # exactly k times the median is not more than it
    (333, [1000] * 5, 3, Anomaly.FAST),
    (334, [1000] * 5, 3, None),
    (9000, [1000] * 4, 3, None),  # too few samples
    (9000, [100, 1000, 1000, 1000, 50_000], 3, Anomaly.SLOW),  # the median, not the mean
    (None, [1000] * 5, 3, None),
    (5000, [0] * 5, 3, None),
    (5000, [1000] * 5, 1, None),  # a factor of 1 would flag every run
])
def test_duration_anomaly(duration, recent, factor, anomaly):
    assert duration_anomaly(duration, recent, factor=factor) is anomaly


@pytest.mark.parametrize(("streak", "threshold", "reached"), [
    (2, 3, False), (3, 3, True), (4, 3, False), (3, None, False), (1, 0, False),
])
def test_consecutive_failures_fire_once_at_the_threshold(streak, threshold, reached):
    assert consecutive_failures_reached(streak, threshold) is reached


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (10, 300)])
def test_delivery_backoff(attempts, seconds):
    assert delivery_retry_at(NOW, attempts, base=5, cap=300) == NOW + timedelta(seconds=seconds)
