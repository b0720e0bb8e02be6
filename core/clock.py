"""The one place the current time is read. Everything else takes ``now`` as an argument."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
