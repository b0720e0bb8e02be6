"""Fixtures shared by the test suites: a JSON API client (an admin's by default, any role on request) and
persona factories built on the models.

Subdirectories may define fixtures of the same name (``tests/scheduling`` and ``tests/sdk`` do); theirs win
there.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from alerts.models import AlertRule, Channel, Incident
from executions.models import TaskExecution
from executors.models import Executor
from tasks.models import BlackoutCalendar, Task, TaskExecutor
from workflows.services import workflow_create, workflow_trigger

_MISSING = object()


class Api:
    """DRF's APIClient that sends JSON and answers ``(status, body)``.

    ``body`` is the decoded JSON for a JSON response, ``None`` for an empty one, and the text otherwise
    (so a test asserting a dict fails visibly on an HTML error page). ``last`` keeps the raw response.
    ``authorization`` is sent as the Authorization header of every request (None: no credentials).
    """

    def __init__(self, authorization: str | None = None) -> None:
        self.client = APIClient()
        self.last = None
        self.authorization = authorization
        if authorization is not None:
            self.client.credentials(HTTP_AUTHORIZATION=authorization)

    def request(self, method: str, path: str, body: Any = _MISSING, *, params: dict | None = None,
                raw: str | bytes | None = None, content_type: str = "application/json",
                **headers: str) -> tuple[int, Any]:
        if params:
            path = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"
        kwargs: dict[str, Any] = {}
        if raw is not None:
            kwargs = {"data": raw, "content_type": content_type}
        elif body is not _MISSING:
            kwargs = {"data": json.dumps(body), "content_type": content_type}
        response = self.client.generic(method.upper(), path, **kwargs, **headers)
        self.last = response
        return response.status_code, decode(response)

    def get(self, path: str, params: dict | None = None, **kwargs: Any) -> tuple[int, Any]:
        return self.request("GET", path, params=params, **kwargs)

    def post(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, body, **kwargs)


def decode(response) -> Any:
    content = response.content
    if not content:
        return None
    if response.get("Content-Type", "").startswith("application/json"):
        return json.loads(content)
    return content.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped: on PostgreSQL, sessions a test left open
    (a thread that used the database and ended without closing its connection) are ended, since a database
    with sessions cannot be dropped."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


# Where the tests' executors live: loopback, and the private networks of the spec's examples. Stated here
# rather than left to DEBUG's default, for this process and the children it starts alike.
TEST_EXECUTOR_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "192.168.0.0/16"]


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory):
    """The executor networks above; and SDK executors, which keep their signing secret in a file
    (scheduler_sdk.credentials), keep theirs in a temporary directory rather than in the home directory."""
    from django.test import override_settings

    os.environ["SCHEDULER_SECRET_FILE"] = str(tmp_path_factory.mktemp("executor-secrets") / "{instance_id}.json")
    os.environ["SCHEDULER_EXECUTOR_ALLOWED_NETWORKS"] = ",".join(TEST_EXECUTOR_NETWORKS)
    with override_settings(SCHEDULER_EXECUTOR_ALLOWED_NETWORKS=TEST_EXECUTOR_NETWORKS):
        yield


@pytest.fixture(autouse=True)
def _no_failed_logins_counted():
    """Failed authentications are counted per address in the cache (accounts.throttling): every test starts
    from none, whatever the tests before it sent."""
    cache.clear()


@pytest.fixture
def make_api_key(db) -> Callable[..., str]:
    """A real API key with ``role`` (viewer, operator, admin, executor); returns the full key."""

    def make(role: str = "admin", *, name: str | None = None, username: str | None = None) -> str:
        return api_key_create(name=name or f"test {role}", role=role, username=username)[1]

    return make


@pytest.fixture
def api_as(make_api_key) -> Callable[[str], Api]:
    """``api_as("viewer")``: a client sending a real API key of that role."""
    return lambda role: Api(f"Bearer {make_api_key(role)}")


@pytest.fixture
def api(api_as) -> Api:
    """The API as an admin, through a real API key (so the real authentication path runs)."""
    return api_as("admin")


@pytest.fixture
def anon_api(db) -> Api:
    """The API without credentials."""
    return Api()


_serial = itertools.count(1)


@pytest.fixture
def make_task(db) -> Callable[..., Task]:
    def make(**overrides: Any) -> Task:
        n = next(_serial)
        fields: dict[str, Any] = {"name": f"task-{n}", "cron_expression": "0 */5 * * * *"}
        fields.update(overrides)
        return Task.objects.create(**fields)

    return make


@pytest.fixture
def make_executor(db) -> Callable[..., Executor]:
    def make(**overrides: Any) -> Executor:
        n = next(_serial)
        fields: dict[str, Any] = {
            "name": f"executor-{n}",
            "instance_id": f"instance-{n}",
            "base_url": f"http://127.0.0.1:{20000 + n}",
        }
        fields.update(overrides)
        fields.setdefault("health_check_url", fields["base_url"].rstrip("/") + "/health")
        return Executor.objects.create(**fields)

    return make


@pytest.fixture
def make_execution(db, make_task) -> Callable[..., TaskExecution]:
    """An execution row; ``task`` defaults to a new task. Each default ``scheduled_time`` is distinct (the
    fire key ``task, scheduled_time, trigger_type, retry_count, shard, node_key`` is unique)."""

    # One base per test, stepped back by a serial: distinct by construction (now() - serial ms was not, for
    # two calls exactly one millisecond apart).
    base = timezone.now()

    def make(**overrides: Any) -> TaskExecution:
        if "task" not in overrides and "task_id" not in overrides:
            overrides["task"] = make_task()
        overrides.setdefault("scheduled_time", base - timedelta(milliseconds=next(_serial)))
        return TaskExecution.objects.create(**overrides)

    return make


# --- executor-signed requests (executors.channel) ----------------------------------------------------------

def _executor_post(method: str, path: str) -> bool:
    """POST /api/v1/executions/{id}/callback, /logs or /progress."""
    parts = path.split("?")[0].rstrip("/").split("/")
    return method.upper() == "POST" and len(parts) == 6 and parts[1:4] == ["api", "v1", "executions"] \
        and parts[5] in ("callback", "logs", "progress")


class SignedApi:
    """Requests as an executor sends them: no user credentials, signed with an executor's secret.

    ``post(path, body, executor=None)`` signs as ``executor``, by default the executor of the execution in
    ``path`` (``/api/v1/executions/{id}/...``); an execution with none is first given one, as dispatch would,
    and an unknown execution is signed for by a new executor. ``now=`` (a stale message) and ``secret=`` (a
    forgery) go to ``signature_headers``. ``replay`` sends the last signed request again, headers and all.
    """

    def __init__(self) -> None:
        self.api = Api()
        self.last_headers: dict[str, str] = {}
        self.last_request: tuple[str, str | bytes, str] = ("", b"", "")

    @property
    def last(self):
        return self.api.last

    def request(self, method: str, path: str, body: Any = _MISSING, *, executor: Executor | None = None,
                raw: str | bytes | None = None, content_type: str = "application/json", now: float | None = None,
                secret: str | None = None, **headers: str) -> tuple[int, Any]:
        from scheduler_sdk.signing import signature_headers  # here: this section is appended to a shared file

        executor = executor or _dispatched_executor(path)
        if raw is None:
            raw = "" if body is _MISSING else json.dumps(body)
        data = raw.encode() if isinstance(raw, str) else raw
        self.last_headers = signature_headers(executor.secret if secret is None else secret, method,
                                              _path_as_the_server_sees_it(method, path), data,
                                              executor_id=executor.pk, now=now)
        self.last_request = (path, raw, content_type)
        return self.replay(**headers)

    def post(self, path: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kwargs)

    def replay(self, signature: dict[str, str] | None = None, **headers: str) -> tuple[int, Any]:
        """Sends the last signed request again, with its signature headers (or ``signature``)."""
        path, raw, content_type = self.last_request
        meta = {"HTTP_" + name.upper().replace("-", "_"): value
                for name, value in (self.last_headers if signature is None else signature).items()}
        return self.api.request("POST", path, raw=raw, content_type=content_type, **meta, **headers)

    def routing(self, api: Api) -> RoutedApi:
        return RoutedApi(api, self)


class RoutedApi(Api):
    """``api`` for every request except the executor's POSTs (callback, logs, progress), which are signed."""

    def __init__(self, api: Api, signed: SignedApi) -> None:
        super().__init__()
        self._api, self._signed = api, signed

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        target = self._signed if _executor_post(method, path) else self._api
        if target is self._signed and kwargs.get("params"):
            path = f"{path}?{urlencode(kwargs.pop('params'))}"
        response = target.request(method, path, *args, **kwargs)
        self.last = target.last
        return response


def _path_as_the_server_sees_it(method: str, path: str) -> str:
    """What the server verifies: Django's ``get_full_path()`` of the request (ids in tests may hold odd
    percent-escapes, which Django normalises)."""
    from django.test import RequestFactory

    return RequestFactory().generic(method, path).get_full_path()


def _dispatched_executor(path: str) -> Executor:
    parts = path.split("?")[0].split("/")
    execution_id = parts[4] if len(parts) > 4 and parts[1:4] == ["api", "v1", "executions"] else None
    execution = TaskExecution.objects.select_related("executor").filter(pk=execution_id).first() \
        if execution_id else None
    if execution is not None and execution.executor is not None:
        return execution.executor
    n = next(_serial)
    executor = Executor.objects.create(name=f"dispatched-{n}", instance_id=f"dispatched-{n}",
                                       base_url="http://127.0.0.1:9")
    if execution is not None:
        TaskExecution.objects.filter(pk=execution.pk).update(executor=executor)
    return executor


@pytest.fixture
def signed(db) -> SignedApi:
    """Executor-signed requests: ``signed.post(f"/api/v1/executions/{pk}/callback", {...})``."""
    return SignedApi()


@pytest.fixture
def admin_or_executor_api(api, signed) -> RoutedApi:
    """The admin's API, except the executor's own POSTs (callback, logs, progress): those come signed by the
    execution's executor, as only such requests get past authentication."""
    return signed.routing(api)


@pytest.fixture
def fake_dns(monkeypatch) -> dict[str, list[str]]:
    """Host name -> addresses for the executor address guard (``executors.netguard.resolve``), instead of real
    DNS: IP literals resolve to themselves, names not in the table do not resolve."""
    import ipaddress

    from executors import netguard

    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise netguard.UnresolvableHost(f"{host} is not in the fake DNS") from None
        return [host]

    monkeypatch.setattr(netguard, "resolve", resolve)
    return table


# --- rows the API tests address by id --------------------------------------------------------------------

@dataclass
class World:
    """A task assigned to an executor, and a running execution of it; a workflow of that task, and a run of it;
    a blackout calendar; an alert channel, the task's alert rule and an open incident of the task."""

    task: str
    executor: str
    execution: str
    workflow: str = ""
    workflow_run: str = ""
    calendar: str = ""
    channel: str = ""
    rule: str = ""
    incident: str = ""

    def path(self, template: str) -> str:
        """``template`` with ``{task}``, ``{executor}``, ``{execution}``, ``{workflow}``, ``{workflow_run}``,
        ``{calendar}``, ``{channel}``, ``{rule}``, ``{incident}``."""
        for name in ("task", "executor", "execution", "workflow_run", "workflow", "calendar", "channel", "rule",
                     "incident"):
            template = template.replace("{" + name + "}", getattr(self, name))
        return template


@pytest.fixture
def world(make_task, make_executor, make_execution) -> World:
    task = make_task()
    executor = make_executor()
    TaskExecutor.objects.create(task=task, executor=executor)
    execution = make_execution(task=task, executor=executor, status="running", start_time=timezone.now())
    calendar = BlackoutCalendar.objects.create(name="world calendar", entries=["Sun 02:00-04:00"])
    workflow = workflow_create(data={"name": f"workflow of {task.name}"}, nodes=[{"name": "only", "task_id": task.pk}],
                               edges=[], now=timezone.now())
    run = workflow_trigger(workflow_id=workflow.pk, parameters=None, now=timezone.now())
    channel = Channel(name="world log")
    channel.url = "log://"
    channel.save()
    rule = AlertRule.objects.create(task=task)
    incident = Incident.objects.create(condition="run_failed", subject=f"task:{task.pk}", task=task,
                                       summary=f"{task.name}: run failed", opened_at=timezone.now(),
                                       last_seen_at=timezone.now())
    return World(task=task.pk, executor=executor.pk, execution=execution.pk, workflow=workflow.pk,
                 workflow_run=run.pk, calendar=calendar.pk, channel=channel.pk, rule=rule.pk, incident=incident.pk)
