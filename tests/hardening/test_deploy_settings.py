"""Production settings come from the environment: ``check --deploy`` is clean with DEBUG off, secrets are
required, bad values stop start-up naming the variable, and development keeps its plain-HTTP defaults."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
# Every variable these tests set or that would change the outcome, removed from the inherited environment.
_CONTROLLED = ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
               "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
               "SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS", "LOGIN_FAILURE_LIMIT", "LOGIN_LOCKOUT_MINUTES",
               "METRICS_TOKEN", "DATA_UPLOAD_MAX_MEMORY_SIZE")
SHOW_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
    "'ssl_redirect': s.SECURE_SSL_REDIRECT, 'hsts': s.SECURE_HSTS_SECONDS, 'session_secure': s.SESSION_COOKIE_SECURE,"
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'proxy_header': s.SECURE_PROXY_SSL_HEADER,"
    "'trusted': s.CSRF_TRUSTED_ORIGINS, 'limit': s.AXES_FAILURE_LIMIT,"
    "'cooloff': s.AXES_COOLOFF_TIME.total_seconds()}))"
)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in _CONTROLLED}
    base["DJANGO_SETTINGS_MODULE"] = "scheduler_project.settings"
    return subprocess.run([sys.executable, *args], cwd=PROJECT, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def production(**env: str) -> dict[str, str]:
    return {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "scheduler.example.com", **env}


def settings_of(**env: str) -> dict:
    result = run(["-c", SHOW_SETTINGS], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_environment():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **production())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_warns_when_production_turns_protections_off():
    # The clean result above comes from the settings, not from a check that cannot fail.
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                 **production(SECURE_SSL_REDIRECT="0", SESSION_COOKIE_SECURE="false"))
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout
    assert "security.W012" in result.stderr + result.stdout


def test_debug_off_without_secret_key_uses_a_key_made_for_this_installation(tmp_path):
    # tests/security/test_low_findings.py: random, kept in SECRET_KEY_FILE with mode 0600.
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], DEBUG="0",
                 ALLOWED_HOSTS="scheduler.example.com", SECRET_KEY_FILE=str(tmp_path / "secret_key"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len((tmp_path / "secret_key").read_text().strip()) >= 50


def test_production_defaults_are_secure():
    values = settings_of(**production())
    assert values["ssl_redirect"] is True
    assert values["hsts"] >= 365 * 24 * 3600
    assert values["session_secure"] is True and values["csrf_secure"] is True
    assert values["proxy_header"] is None  # trusting a forwarded header is opt-in


def test_development_keeps_plain_http():
    values = settings_of(DEBUG="1")
    assert values["ssl_redirect"] is False
    assert values["hsts"] == 0
    assert values["session_secure"] is False and values["csrf_secure"] is False


def test_environment_overrides_the_production_defaults():
    values = settings_of(**production(
        SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="600", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
        CSRF_TRUSTED_ORIGINS="https://scheduler.example.com, https://ops.example.com",
        LOGIN_FAILURE_LIMIT="3", LOGIN_LOCKOUT_MINUTES="2.5",
    ))
    assert values["ssl_redirect"] is False
    assert values["hsts"] == 600
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["trusted"] == ["https://scheduler.example.com", "https://ops.example.com"]
    assert values["limit"] == 3
    assert values["cooloff"] == 150


@pytest.mark.parametrize(("name", "value"), [
    ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
    ("SECURE_HSTS_SECONDS", "a year"),
    ("SESSION_COOKIE_SECURE", "maybe"),
    ("LOGIN_FAILURE_LIMIT", "0"),
])
def test_bad_value_stops_start_up_naming_the_variable(name, value):
    result = run(["manage.py", "check"], **production(**{name: value}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr
