"""The OpenAPI schema: it builds without warnings, validates, and lists every path of spec 000 §4.1 and of the
apps added since (workflows, alerts)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.helpers import ERROR_KEYS

# Spec 000 §4.1, with ``:id`` written the OpenAPI way.
SPEC_OPERATIONS = [
    ("get", "/api/v1/health"),
    ("get", "/api/v1/tasks"), ("post", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{id}"), ("put", "/api/v1/tasks/{id}"), ("delete", "/api/v1/tasks/{id}"),
    ("post", "/api/v1/tasks/{id}/trigger"), ("post", "/api/v1/tasks/{id}/pause"), ("post", "/api/v1/tasks/{id}/resume"),
    ("get", "/api/v1/tasks/{id}/stats"),
    ("get", "/api/v1/tasks/{id}/executors"), ("post", "/api/v1/tasks/{id}/executors"),
    ("put", "/api/v1/tasks/{id}/executors/{executor_id}"), ("delete", "/api/v1/tasks/{id}/executors/{executor_id}"),
    ("get", "/api/v1/executors"), ("get", "/api/v1/executors/{id}"), ("post", "/api/v1/executors/register"),
    ("put", "/api/v1/executors/{id}"), ("put", "/api/v1/executors/{id}/status"), ("delete", "/api/v1/executors/{id}"),
    ("get", "/api/v1/executions"), ("get", "/api/v1/executions/stats"), ("get", "/api/v1/executions/{id}"),
    ("post", "/api/v1/executions/{id}/callback"), ("post", "/api/v1/executions/{id}/stop"),
    ("get", "/api/v1/scheduler/status"),
]
# Beyond the spec: workflows (#19) and alerts (#18).
ADDED_OPERATIONS = [
    ("get", "/api/v1/workflows"), ("post", "/api/v1/workflows"), ("post", "/api/v1/workflows/chain"),
    ("get", "/api/v1/workflows/{id}"), ("put", "/api/v1/workflows/{id}"), ("delete", "/api/v1/workflows/{id}"),
    ("post", "/api/v1/workflows/{id}/trigger"), ("get", "/api/v1/workflows/{id}/runs"),
    ("get", "/api/v1/workflow-runs/{id}"), ("post", "/api/v1/workflow-runs/{id}/cancel"),
    ("post", "/api/v1/workflow-runs/{id}/rerun"),
    ("get", "/api/v1/alerts/channels"), ("post", "/api/v1/alerts/channels"),
    ("get", "/api/v1/alerts/channels/{id}"), ("put", "/api/v1/alerts/channels/{id}"),
    ("delete", "/api/v1/alerts/channels/{id}"), ("post", "/api/v1/alerts/channels/{id}/test"),
    ("get", "/api/v1/alerts/rules"), ("post", "/api/v1/alerts/rules"),
    ("get", "/api/v1/alerts/rules/{id}"), ("put", "/api/v1/alerts/rules/{id}"), ("delete", "/api/v1/alerts/rules/{id}"),
    ("get", "/api/v1/alerts/incidents"), ("get", "/api/v1/alerts/incidents/{id}"),
    ("get", "/api/v1/alerts/notifications"),
]


@pytest.fixture(scope="module")
def schema() -> dict:
    """Built once per module: generating it takes a while, and it does not touch the database."""
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    assert "json" in response["Content-Type"]
    return json.loads(response.content)


def test_schema_endpoint_serves_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["version"] == "1.0.0"


@pytest.mark.parametrize(("method", "path"), SPEC_OPERATIONS, ids=[f"{m}-{p}" for m, p in SPEC_OPERATIONS])
def test_schema_lists_every_spec_operation_at_the_spec_path(schema, method, path):
    assert path in schema["paths"], sorted(schema["paths"])
    assert method in schema["paths"][path]


@pytest.mark.parametrize(("method", "path"), ADDED_OPERATIONS, ids=[f"{m}-{p}" for m, p in ADDED_OPERATIONS])
def test_schema_lists_the_workflow_and_alert_operations(schema, method, path):
    assert path in schema["paths"], sorted(schema["paths"])
    assert method in schema["paths"][path]


def test_schema_paths_are_written_without_trailing_slash(schema):
    assert [path for path in schema["paths"] if path.endswith("/")] == []


def test_schema_documents_the_spec_error_body(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == ERROR_KEYS
    create = schema["paths"]["/api/v1/tasks"]["post"]["responses"]
    assert {"201", "400", "409"} <= set(create)
    assert create["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


def test_schema_describes_the_success_envelope(schema):
    created = schema["paths"]["/api/v1/tasks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][created["$ref"].rsplit("/", 1)[1]]
    assert {"code", "message", "data"} <= set(component["properties"])


def test_spectacular_validate_fail_on_warn_passes(tmp_path):
    target = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    written = json.loads(target.read_text())
    assert {path for _, path in SPEC_OPERATIONS + ADDED_OPERATIONS} <= set(written["paths"])


def test_swagger_docs_page_answers_200(api):
    status, body = api.get("/api/docs/")
    assert status == 200
    assert "swagger" in body.lower()


def normalised(name: str) -> str:
    """What client generators make of a component name: openapi-python-client drops the leading underscore
    and other generators case or strip separators, so ``_ExecutorDetail`` and ``ExecutorDetail`` collide."""
    return "".join(character for character in name if character.isalnum()).lower()


def test_component_names_stay_unique_after_a_generators_normalisation(schema):
    names = list(schema["components"]["schemas"])
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(normalised(name), []).append(name)
    assert {key: group for key, group in seen.items() if len(group) > 1} == {}


def test_task_update_request_requires_no_field_as_the_partial_put_accepts_any_subset(schema):
    update = schema["components"]["schemas"]["TaskUpdateRequest"]
    assert update.get("required", []) == []
    create = schema["components"]["schemas"]["TaskWriteRequest"]
    assert "name" in create["required"]
