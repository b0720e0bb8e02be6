"""Fixtures for the console's admin tests: an operator logged in (pytest-django's ``admin_client``), history
rows relative to now, and a query counter to prove list pages do not grow with their rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from executions.models import TaskExecution

CHANGELIST = {
    "task": "admin:tasks_task_changelist",
    "executor": "admin:executors_executor_changelist",
    "execution": "admin:executions_taskexecution_changelist",
}


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def changelist(kind: str) -> str:
    return reverse(CHANGELIST[kind])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.fixture
def run(db, make_task) -> Callable[..., TaskExecution]:
    """An execution ``minutes_ago`` minutes back (distinct times so the fire key stays unique)."""
    counter = iter(range(1, 100_000))

    def make(task=None, *, minutes_ago: float = 5, **fields) -> TaskExecution:
        fields.setdefault("scheduled_time", timezone.now() - timedelta(minutes=minutes_ago,
                                                                        microseconds=next(counter)))
        return TaskExecution.objects.create(task=task or make_task(), **fields)

    return make


@pytest.fixture
def queries_for(admin_client) -> Callable[[str], int]:
    """How many queries a GET of ``path`` runs (and that it answers 200)."""

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(path)
        assert response.status_code == 200, response.content[:500]
        return len(captured)

    return count


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The logged-in operator's password is hashed once per test; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
