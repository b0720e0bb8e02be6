"""Personas of the registration attacks: the shared registration key (on every executor host), an executor
registered with it, and requests signed with an executor's own secret."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from scheduler_sdk.signing import signature_headers
from tests.conftest import Api

REGISTER = "/api/v1/executors/register"


def registration(**overrides: Any) -> dict[str, Any]:
    return {"name": "etl", "instance_id": "etl-1", "base_url": "http://127.0.0.1:9090", **overrides}


def signed_meta(secret: str, executor_id: str, raw: str, path: str = REGISTER) -> dict[str, str]:
    """The signature headers of a POST to ``path`` with body ``raw``, as Django META keys."""
    headers = signature_headers(secret, "POST", path, raw.encode(), executor_id=executor_id)
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


class Registrar(Api):
    """An executor host: registers with a bearer credential, optionally signing with a secret."""

    def register(self, body: dict[str, Any], *, secret: str | None = None, executor_id: str | None = None):
        raw = json.dumps(body)
        meta = signed_meta(secret, executor_id, raw) if secret else {}
        return self.request("POST", REGISTER, raw=raw, **meta)


@pytest.fixture
def registration_key(settings) -> str:
    settings.SCHEDULER_REGISTRATION_KEY = secrets.token_urlsafe(32)
    return settings.SCHEDULER_REGISTRATION_KEY


@pytest.fixture
def host(db, registration_key) -> Registrar:
    """Anyone holding the shared registration key (an executor host, or an attacker on one)."""
    return Registrar(f"Bearer {registration_key}")


@pytest.fixture
def admin_registrar(make_api_key) -> Registrar:
    return Registrar(f"Bearer {make_api_key('admin')}")


@pytest.fixture
def victim(host) -> dict[str, Any]:
    """An executor registered through the shared key: its registration answer (id, secret)."""
    status, body = host.register(registration())
    assert status == 201, body
    return body["data"]
