"""No secrets in the logs: the JSON formatter masks extras under secret-looking keys, and Django's error
reports hide credential headers."""

from __future__ import annotations

from django.test import RequestFactory
from django.views.debug import get_default_exception_reporter_filter

from scheduler_project.redaction import MASK
from tests.project.test_logformat import formatted, record


def test_json_log_masks_secret_extras_and_secrets_inside_extra_dicts():
    payload = formatted(record(execution_id="e-1", token="t-1",
                               parameters={"source": "a", "auth": {"password": "hunter2"}}))
    assert payload["execution_id"] == "e-1"
    assert payload["token"] == MASK
    assert payload["parameters"] == {"source": "a", "auth": {"password": MASK}}


def test_json_log_still_writes_a_structure_that_contains_itself():
    loop: dict = {"name": "loop"}
    loop["self"] = loop
    assert formatted(record(data=loop))["data"] == {"name": "loop", "self": "<recursion>"}


def test_error_reports_hide_authorization_and_signature_headers():
    request = RequestFactory().get("/api/v1/tasks", HTTP_AUTHORIZATION="Bearer dts_abcdefgh_secret",
                                   HTTP_X_SCHEDULER_SIGNATURE="f00d", HTTP_ACCEPT="application/json")
    meta = get_default_exception_reporter_filter().get_safe_request_meta(request)
    assert "dts_abcdefgh_secret" not in str(meta) and "f00d" not in str(meta)
    assert meta["HTTP_ACCEPT"] == "application/json"
