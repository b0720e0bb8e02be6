"""/metrics stays open without METRICS_TOKEN (loopback scraping as before); with it, only its bearer scrapes."""

from __future__ import annotations

import pytest


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = "scrape-me-7f3a"  # noqa: S105 - test value
    return settings.METRICS_TOKEN


def test_metrics_are_open_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"scheduler_database_up" in response.content


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic c2NyYXBlLW1lLTdmM2E=", "Bearer"])
def test_metrics_refuse_missing_or_wrong_tokens(client, db, token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"scheduler_" not in response.content


def test_metrics_answer_the_token_bearer(client, db, token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert b"scheduler_database_up 1.0" in response.content
