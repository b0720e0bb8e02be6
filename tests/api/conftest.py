"""Rows the API tests address by id."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from tasks.models import TaskExecutor


@dataclass
class World:
    """A task assigned to an executor, and a running execution of it."""

    task: str
    executor: str
    execution: str

    def path(self, template: str) -> str:
        """``template`` with ``{task}``, ``{executor}`` and ``{execution}`` filled in."""
        for name in ("task", "executor", "execution"):
            template = template.replace("{" + name + "}", getattr(self, name))
        return template


@pytest.fixture
def world(make_task, make_executor, make_execution) -> World:
    task = make_task()
    executor = make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    execution = make_execution(task=task, executor=executor, status="running", start_time=timezone.now())
    return World(task=task.pk, executor=executor.pk, execution=execution.pk)
