"""Scheduler tunables, read at call time so ``override_settings(SCHEDULER=...)`` takes effect in tests."""

from typing import Any

from django.conf import settings


def tunable(name: str) -> Any:
    return settings.SCHEDULER[name]
