"""What scheduler_project/schema.py makes the OpenAPI schema say, so the fuzzer's conformance checks hold
for reasons a reader can see: each of these was a schemathesis finding."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient


@pytest.fixture(scope="module")
def schema() -> dict:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _body_schema(schema: dict, response: dict) -> dict:
    body = response["content"]["application/json"]["schema"]
    if "$ref" in body:
        return schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body


def test_list_actions_answer_an_envelope_object_not_an_array(schema):
    for path in ("/api/v1/tasks", "/api/v1/executors", "/api/v1/executions"):
        body = _body_schema(schema, schema["paths"][path]["get"]["responses"]["200"])
        assert body.get("type") == "object", path
        assert {"code", "message", "data"} <= set(body["properties"]), path


def test_listed_executors_carry_task_assignments_only_on_request(schema):
    listed = _body_schema(schema, schema["paths"]["/api/v1/executors"]["get"]["responses"]["200"])
    item = schema["components"]["schemas"][listed["properties"]["data"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert "task_executors" in item["properties"]
    assert "task_executors" not in item.get("required", [])


def test_operations_that_need_credentials_declare_401_and_403(schema):
    secured = [(label, operation) for label, operation in _operations(schema)
               if operation.get("security") and {} not in operation["security"]]
    assert secured, "no operation requires credentials"
    for label, operation in secured:
        assert {"401", "403"} <= set(operation["responses"]), label
        assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


def test_executor_signed_endpoints_declare_401_and_no_throttle(schema):
    for path in ("/api/v1/executions/{id}/callback", "/api/v1/executions/callbacks"):
        callback = schema["paths"][path]["post"]
        assert callback["security"] == [{"executorSignature": []}], path
        assert "401" in callback["responses"], path
        assert "429" not in callback["responses"], path


def test_api_key_operations_declare_the_failed_authentication_throttle(schema):
    assert "429" in schema["paths"]["/api/v1/tasks"]["get"]["responses"]


def test_public_health_declares_no_authentication_errors(schema):
    health = schema["paths"]["/api/v1/health"]["get"]
    assert {} in health["security"]
    assert not {"401", "403", "429"} & set(health["responses"])


def test_request_bodies_refuse_unknown_keys_as_the_server_does(schema):
    create = schema["paths"]["/api/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][create["$ref"].rsplit("/", 1)[1]]
    assert component["additionalProperties"] is False
