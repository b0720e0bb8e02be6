"""Schemathesis drives every operation of the OpenAPI schema through the real Django stack.

Each operation gets generated requests, valid and invalid, and every answer must be no 5xx, a status the
schema lists, the content type it lists, and a body that validates against it. The requests go in-process
through the project's WSGI application (every middleware, the URL conf, authentication, DRF, the exception
handler), inside the test's database transaction, so the run fits in CI and leaves nothing behind.

The fuzzer holds every credential, so it gets past authentication everywhere: an admin API key, and the
signing secret of a known executor for the executor-only endpoints (callback, batch callbacks, POST logs and
progress).

Bounded for CI: at most FUZZ_MAX_EXAMPLES (default 20) generated requests per operation and generation
phase, plus schemathesis' deterministic coverage cases; fixed seed FUZZ_SEED. Longer on demand: ``make fuzz``
(300), or ``make fuzz FUZZ_MAX_EXAMPLES=1000 FUZZ_SEED=7``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIRequest
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from alerts.models import AlertRule, Channel, Incident
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.models import Executor
from scheduler_project.wsgi import application
from scheduler_sdk.signing import signature_headers
from tasks.choices import TaskStatus
from tasks.models import BlackoutCalendar, Task, TaskExecutor
from tests.fuzz import tally
from workflows.models import Workflow, WorkflowNode, WorkflowRun

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Rows the generated requests can find, so operations on one resource get past "not found". Fixed ids keep
# a run reproducible from its seed.
TASK_ID = "fuzz-task"
PAUSED_TASK_ID = "fuzz-task-paused"
EXECUTOR_ID = "fuzz-executor"
EXECUTOR_SECRET = "fuzz-executor-signing-secret"  # noqa: S105 - a test executor's, in the test database only
RUNNING_EXECUTION_ID = "fuzz-execution-running"
FINISHED_EXECUTION_ID = "fuzz-execution-finished"
CALENDAR_ID = "fuzz-calendar"
USER_ID = 4242
USERNAME = "fuzz-admin"
PASSWORD = "fuzz-admin-password-0123"  # noqa: S105 - a test user's, in the test database only
PASSWORD_HASH = make_password(PASSWORD)  # hashed once: each hash takes a deliberate fraction of a second
# Signed now for the user the fixture creates with this id and password (tokens are bound to the password):
# valid for the refresh lifetime (hours).
REFRESH_TOKEN = str(RefreshToken.for_user(get_user_model()(id=USER_ID, username=USERNAME, password=PASSWORD_HASH)))
WORKFLOW_ID = "fuzz-workflow"
IDLE_WORKFLOW_ID = "fuzz-workflow-idle"
RUNNING_RUN_ID = "fuzz-workflow-run-running"
FAILED_RUN_ID = "fuzz-workflow-run-failed"
CHANNEL_ID = "fuzz-channel"
SPARE_CHANNEL_ID = "fuzz-channel-spare"
RULE_ID = "fuzz-rule"
INCIDENT_ID = "fuzz-incident"
KNOWN_IDS = {
    "id": [TASK_ID, PAUSED_TASK_ID, EXECUTOR_ID, RUNNING_EXECUTION_ID, FINISHED_EXECUTION_ID, WORKFLOW_ID,
           IDLE_WORKFLOW_ID, RUNNING_RUN_ID, FAILED_RUN_ID, CALENDAR_ID, CHANNEL_ID, RULE_ID, INCIDENT_ID],
    "executor_id": [EXECUTOR_ID],
}


@pytest.fixture
def known_rows(db) -> None:
    now = timezone.now()
    get_user_model().objects.create(id=USER_ID, username=USERNAME, password=PASSWORD_HASH, is_staff=True,
                                    is_superuser=True)
    task = Task.objects.create(id=TASK_ID, name="fuzz task", cron_expression="0 */5 * * * *")
    Task.objects.create(id=PAUSED_TASK_ID, name="fuzz paused task", cron_expression="0 0 * * * *",
                        status=TaskStatus.PAUSED)
    # Port 9 (discard) on loopback: nothing listens, so anything told to reach the executor fails fast.
    executor = Executor.objects.create(id=EXECUTOR_ID, name="fuzz executor", instance_id="fuzz-instance",
                                       base_url="http://127.0.0.1:9", health_check_url="http://127.0.0.1:9/health",
                                       secret=EXECUTOR_SECRET)
    TaskExecutor.objects.create(task=task, executor=executor)
    BlackoutCalendar.objects.create(id=CALENDAR_ID, name="fuzz calendar", entries=["Sun 02:00-04:00"])
    TaskExecution.objects.create(id=RUNNING_EXECUTION_ID, task=task, executor=executor, status=ExecutionStatus.RUNNING,
                                 scheduled_time=now - timedelta(seconds=5), start_time=now - timedelta(seconds=4))
    TaskExecution.objects.create(id=FINISHED_EXECUTION_ID, task=task, executor=executor,
                                 status=ExecutionStatus.SUCCESS, scheduled_time=now - timedelta(minutes=5),
                                 start_time=now - timedelta(minutes=5), end_time=now - timedelta(minutes=4),
                                 result={"ok": True}, logs="done\n")
    _known_workflows(task, now)
    _known_alerts(task, now)


def _known_workflows(task: Task, now) -> None:
    """A workflow with a running and a failed run, and one without runs (which may be deleted)."""
    for workflow_id in (WORKFLOW_ID, IDLE_WORKFLOW_ID):
        workflow = Workflow.objects.create(id=workflow_id, name=workflow_id)
        WorkflowNode.objects.create(workflow=workflow, name="only", task=task)
    graph = {"nodes": [{"name": "only", "node_id": None, "task_id": task.pk, "parameters": {}}], "edges": []}
    for run_id, run_status, minutes in ((RUNNING_RUN_ID, "running", 1), (FAILED_RUN_ID, "failed", 2)):
        WorkflowRun.objects.create(id=run_id, workflow_id=WORKFLOW_ID, status=run_status, graph=graph,
                                   scheduled_time=now - timedelta(minutes=minutes), started_at=now)


def _known_alerts(task: Task, now) -> None:
    """Two channels (the spare may be deleted), a task's rule and an open incident."""
    for channel_id in (CHANNEL_ID, SPARE_CHANNEL_ID):
        channel = Channel(id=channel_id, name=channel_id)
        channel.url = "log://"
        channel.save()
    AlertRule.objects.create(id=RULE_ID, task=task)
    Incident.objects.create(id=INCIDENT_ID, condition="run_failed", subject=f"task:{TASK_ID}", task=task,
                            summary="fuzz task: run failed", opened_at=now, last_seen_at=now)


@pytest.fixture
def in_process_server(known_rows) -> Iterator[None]:
    """Django closes a connection at the end of a request when it is in a transaction it did not start;
    here each request runs inside the test's transaction, so do what Django's own test client does. And
    start with no failed-authentication counts that earlier tests left in the cache (they would answer 429)."""
    cache.clear()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def admin_key_headers(db) -> dict[str, str]:
    out = io.StringIO()
    call_command("create_api_key", "--name", "fuzz", "--role", "admin", stdout=out)
    return {"Authorization": f"Bearer {out.getvalue().strip().splitlines()[-1]}"}


def signed_as_known_executor(app):
    """WSGI wrapper: signs every request as the known executor, the way the SDK signs (path with query,
    exact body bytes). Endpoints other than the executor-only ones ignore these headers."""

    def signed(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        target = WSGIRequest({**environ, "wsgi.input": io.BytesIO(body)}).get_full_path()
        headers = signature_headers(EXECUTOR_SECRET, environ["REQUEST_METHOD"], target, body, executor_id=EXECUTOR_ID)
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return app(environ, start_response)

    return signed


# Loaded at collection, from the application itself: the schema's generation touches no database.
# (Not ``schemathesis.pytest.from_fixture``: its lazy loader fails under pytest 9.2.)
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", signed_as_known_executor(application),
    config=schemathesis.Config.from_dict({"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES}}),
)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, ids of rows that exist instead of generated ones."""
    known = {name: st.sampled_from(KNOWN_IDS[name]) for name in path_parameters or {} if name in KNOWN_IDS}
    if not known:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters),
                     st.fixed_dictionaries(known).map(lambda ids: {**path_parameters, **ids}))


# Values the server accepts where the schema can only say "string" (cron syntax, IANA zones, reachable
# URLs, an executor that exists): without them nearly every generated create/update is a 400.
VALID_BODY_VALUES = {
    "cron_expression": ["0 */5 * * * *", "*/10 * * * *", "0 0 12 * * MON-FRI"],
    "cron": ["0 */5 * * * *", "*/10 * * * *"],
    "timezone": ["UTC", "Europe/Berlin", "Asia/Shanghai"],
    "base_url": ["http://127.0.0.1:9", "http://localhost:9/executor"],
    "health_check_url": ["http://127.0.0.1:9/health", ""],
    "executor_id": [EXECUTOR_ID],
    "entries": [["Sun 02:00-04:00"], ["2026-12-25", "2026-12-24..2026-12-26"], []],
    "calendars": [[CALENDAR_ID], []],
    "url": ["log://", "json://127.0.0.1:9/hook", "signed+http://127.0.0.1:9/hook"],
    "silence_windows": ["22:00-07:00", ""],
    "channel_ids": [[CHANNEL_ID], []],
    "task_id": [PAUSED_TASK_ID, None],
}


def _with_valid_values(body: dict) -> st.SearchStrategy:
    replacements = {key: st.sampled_from(VALID_BODY_VALUES[key]) for key in body if key in VALID_BODY_VALUES}
    if isinstance(body.get("tasks"), list):
        replacements["tasks"] = st.just([
            {**item, "cron": VALID_BODY_VALUES["cron"][0]} if isinstance(item, dict) else item
            for item in body["tasks"]
        ])
    return st.fixed_dictionaries(replacements).map(lambda values: {**body, **values})


@schema.hook
def flatmap_body(context, body):
    """Half the time, values the server can accept in place of generated ones."""
    if not isinstance(body, dict):
        return st.just(body)
    return st.one_of(st.just(body), _with_valid_values(body))


# One request per operation that the server accepts, sent first (schemathesis' examples phase): every
# operation then has a success answer checked against the schema too, not only its 4xx answers.
KNOWN_GOOD_REQUESTS = {
    "POST /api/v1/tasks": [
        {"body": {"name": "fuzz cron task", "cron_expression": "0 */5 * * * *", "timezone": "Europe/Berlin",
                  "parameters": {"batch": 1}}},
        {"body": {"name": "fuzz interval task", "schedule_type": "interval", "interval_seconds": 60}},
    ],
    "GET /api/v1/tasks/{id}": [{"path_parameters": {"id": TASK_ID}}],
    "PUT /api/v1/tasks/{id}": [
        {"path_parameters": {"id": TASK_ID}, "body": {"name": "fuzz task renamed", "cron_expression": "*/10 * * * *"}},
    ],
    "DELETE /api/v1/tasks/{id}": [{"path_parameters": {"id": PAUSED_TASK_ID}}],
    "POST /api/v1/tasks/{id}/trigger": [{"path_parameters": {"id": TASK_ID}, "body": {"parameters": {"once": True}}}],
    "POST /api/v1/tasks/{id}/pause": [{"path_parameters": {"id": TASK_ID}}],
    "POST /api/v1/tasks/{id}/resume": [{"path_parameters": {"id": PAUSED_TASK_ID}}],
    "GET /api/v1/tasks/{id}/stats": [{"path_parameters": {"id": TASK_ID}}],
    "GET /api/v1/tasks/{id}/next-runs": [{"path_parameters": {"id": TASK_ID}}],
    "GET /api/v1/tasks/{id}/executors": [{"path_parameters": {"id": TASK_ID}}],
    "POST /api/v1/tasks/{id}/backfill": [
        {"path_parameters": {"id": TASK_ID},
         "body": {"start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-01T01:00:00Z"}},
    ],
    "GET /api/v1/calendars/{id}": [{"path_parameters": {"id": CALENDAR_ID}}],
    "PUT /api/v1/calendars/{id}": [
        {"path_parameters": {"id": CALENDAR_ID}, "body": {"name": "fuzz calendar", "entries": ["2026-12-25"]}},
    ],
    "DELETE /api/v1/calendars/{id}": [{"path_parameters": {"id": CALENDAR_ID}}],
    "POST /api/v1/calendars": [
        {"body": {"name": "fuzz holidays", "timezone": "Europe/Berlin", "entries": ["2026-12-24..2026-12-26"]}},
    ],
    "POST /api/v1/tasks/{id}/executors": [
        {"path_parameters": {"id": PAUSED_TASK_ID}, "body": {"executor_id": EXECUTOR_ID, "weight": 2}},
    ],
    "PUT /api/v1/tasks/{id}/executors/{executor_id}": [
        {"path_parameters": {"id": TASK_ID, "executor_id": EXECUTOR_ID}, "body": {"priority": 1, "weight": 5}},
    ],
    "DELETE /api/v1/tasks/{id}/executors/{executor_id}": [
        {"path_parameters": {"id": TASK_ID, "executor_id": EXECUTOR_ID}},
    ],
    "POST /api/v1/executors/register": [
        {"body": {"name": "fuzz registered", "instance_id": "fuzz-registered", "base_url": "http://127.0.0.1:9",
                  "tasks": [{"task_name": "fuzz declared task", "cron": "0 0 * * * *"}]}},
    ],
    "GET /api/v1/executors/{id}": [{"path_parameters": {"id": EXECUTOR_ID}}],
    "PUT /api/v1/executors/{id}": [
        {"path_parameters": {"id": EXECUTOR_ID}, "body": {"name": "fuzz executor renamed", "metadata": {"zone": "a"}}},
    ],
    "PUT /api/v1/executors/{id}/status": [
        {"path_parameters": {"id": EXECUTOR_ID}, "body": {"status": "offline", "reason": "maintenance"}},
    ],
    "DELETE /api/v1/executors/{id}": [{"path_parameters": {"id": EXECUTOR_ID}}],
    "POST /api/v1/executors/{id}/revoke": [{"path_parameters": {"id": EXECUTOR_ID}}],
    "POST /api/v1/executors/{id}/rotate-secret": [{"path_parameters": {"id": EXECUTOR_ID}}],
    "GET /api/v1/executions/{id}": [{"path_parameters": {"id": FINISHED_EXECUTION_ID}}],
    "GET /api/v1/executions/{id}/logs": [{"path_parameters": {"id": FINISHED_EXECUTION_ID}}],
    "POST /api/v1/executions/{id}/logs": [
        {"path_parameters": {"id": RUNNING_EXECUTION_ID}, "body": {"lines": ["step 1", "step 2"]}},
    ],
    "POST /api/v1/executions/{id}/progress": [
        {"path_parameters": {"id": RUNNING_EXECUTION_ID}, "body": {"percent": 50, "step": "halfway"}},
    ],
    "POST /api/v1/executions/{id}/callback": [
        {"path_parameters": {"id": RUNNING_EXECUTION_ID}, "body": {"status": "success", "result": {"rows": 3}}},
    ],
    "POST /api/v1/executions/{id}/stop": [{"path_parameters": {"id": RUNNING_EXECUTION_ID}}],
    "POST /api/v1/executions/callbacks": [
        {"body": {"results": [{"execution_id": RUNNING_EXECUTION_ID, "status": "success", "result": {"rows": 3}},
                              {"execution_id": FINISHED_EXECUTION_ID, "status": "failed"}]}},
    ],
    "POST /api/v1/workflows": [
        {"body": {"name": "fuzz chain", "nodes": [{"name": "a", "task_id": TASK_ID}, {"name": "b", "task_id": TASK_ID}],
                  "edges": [{"parent": "a", "child": "b", "condition": "on_success"}]}},
    ],
    "POST /api/v1/workflows/chain": [{"body": {"task_ids": [TASK_ID, PAUSED_TASK_ID], "name": "fuzz chain 2"}}],
    "GET /api/v1/workflows/{id}": [{"path_parameters": {"id": WORKFLOW_ID}}],
    "PUT /api/v1/workflows/{id}": [
        {"path_parameters": {"id": WORKFLOW_ID}, "body": {"description": "fuzzed", "max_parallel_nodes": 2}},
    ],
    "DELETE /api/v1/workflows/{id}": [{"path_parameters": {"id": IDLE_WORKFLOW_ID}}],
    "POST /api/v1/workflows/{id}/trigger": [
        {"path_parameters": {"id": WORKFLOW_ID}, "body": {"parameters": {"day": "2024-01-01"}}},
    ],
    "GET /api/v1/workflows/{id}/runs": [{"path_parameters": {"id": WORKFLOW_ID}}],
    "GET /api/v1/workflow-runs/{id}": [{"path_parameters": {"id": RUNNING_RUN_ID}}],
    "POST /api/v1/workflow-runs/{id}/cancel": [{"path_parameters": {"id": RUNNING_RUN_ID}}],
    "POST /api/v1/workflow-runs/{id}/rerun": [{"path_parameters": {"id": FAILED_RUN_ID}}],
    "POST /api/v1/alerts/channels": [{"body": {"name": "fuzz mail", "url": "log://", "rate_limit": 10}}],
    "GET /api/v1/alerts/channels/{id}": [{"path_parameters": {"id": CHANNEL_ID}}],
    "PUT /api/v1/alerts/channels/{id}": [{"path_parameters": {"id": CHANNEL_ID}, "body": {"enabled": False}}],
    "DELETE /api/v1/alerts/channels/{id}": [{"path_parameters": {"id": SPARE_CHANNEL_ID}}],
    "POST /api/v1/alerts/channels/{id}/test": [{"path_parameters": {"id": CHANNEL_ID}}],
    "POST /api/v1/alerts/rules": [{"body": {"consecutive_failures": 3, "silence_windows": "22:00-07:00"}}],
    "GET /api/v1/alerts/rules/{id}": [{"path_parameters": {"id": RULE_ID}}],
    "PUT /api/v1/alerts/rules/{id}": [{"path_parameters": {"id": RULE_ID}, "body": {"channel_ids": [CHANNEL_ID]}}],
    "DELETE /api/v1/alerts/rules/{id}": [{"path_parameters": {"id": RULE_ID}}],
    "GET /api/v1/alerts/incidents/{id}": [{"path_parameters": {"id": INCIDENT_ID}}],
    "POST /api/v1/auth/token": [{"body": {"username": USERNAME, "password": PASSWORD}}],
    "POST /api/v1/auth/token/refresh": [{"body": {"refresh": REFRESH_TOKEN}}],
}


@schema.hook
def before_add_examples(context, examples):
    for request in KNOWN_GOOD_REQUESTS.get(context.operation.label, []):
        examples.append(context.operation.Case(**request))


@schema.hook
def after_call(context, case, response):
    tally.record(case.operation.label, case.method, response.status_code)


@pytest.fixture
def reaches_success() -> Iterator[None]:
    """Fails the operation's test when none of its requests succeeded: conformance alone would pass if,
    say, every request were refused 401 (a documented answer) and nothing behind it were ever reached."""
    tally.start_operation()
    yield
    statuses = tally.current_statuses()
    assert any(200 <= status < 300 for status in statuses), f"no request succeeded: {dict(statuses)}"


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_answers_as_its_schema_says(case, in_process_server, admin_key_headers, reaches_success):
    case.call_and_validate(headers=admin_key_headers, checks=CHECKS)
