"""Finding 7 (low): JWTs outlived a password change; the development SECRET_KEY was a public constant; error
reports showed DATABASE_URL's password; newlines in instance ids and task names forged log lines; the SDK's
HTTP server had no read timeout or connection cap; the console had no Content-Security-Policy."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.views.debug import technical_500_response

from scheduler_sdk._http import ExecutorHTTPServer, Reply
from tests.conftest import Api
from tests.security.conftest import registration

PROJECT = Path(__file__).resolve().parents[2]
PASSWORD = "an-old-password-1"


# --- JWTs and the password -------------------------------------------------------------------------------------


def test_a_password_change_ends_access_and_refresh_tokens(db):
    user = get_user_model().objects.create_user("oncall", password=PASSWORD, is_superuser=True)
    tokens = Api().post("/api/v1/auth/token", {"username": "oncall", "password": PASSWORD})[1]["data"]
    assert Api(f"Bearer {tokens['access']}").get("/api/v1/tasks")[0] == 200
    user.set_password("a-new-password-2")
    user.save()
    assert Api(f"Bearer {tokens['access']}").get("/api/v1/tasks")[0] == 401
    assert Api().post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})[0] == 401


# --- SECRET_KEY -----------------------------------------------------------------------------------------------


def secret_key_of(key_file: Path, debug: str) -> str:
    env = {name: value for name, value in os.environ.items() if name != "SECRET_KEY"}
    env.update(DEBUG=debug, SECRET_KEY_FILE=str(key_file), ALLOWED_HOSTS="scheduler.example.com",
               DJANGO_SETTINGS_MODULE="scheduler_project.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("debug", ["1", "0"])
def test_without_secret_key_each_installation_makes_its_own_and_keeps_it(tmp_path, debug):
    key_file = tmp_path / "var" / "secret_key"
    first = secret_key_of(key_file, debug)
    assert len(first) >= 50 and "dev-only-insecure" not in first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_key_of(key_file, debug) == first
    assert secret_key_of(tmp_path / "elsewhere" / "secret_key", debug) != first


# --- error reports ---------------------------------------------------------------------------------------------


def test_error_reports_hide_the_database_password(settings):
    settings.DEBUG = True
    # The password written apart and kept in no local variable: the page also shows this test's source lines
    # and its frame's variables.
    settings.DATABASE_URL = "mysql://scheduler:" + "hun" + "ter2" + "@db.internal:3306/scheduler"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = technical_500_response(RequestFactory().get("/admin/"), *sys.exc_info())
    page = response.content.decode()
    assert "hun" + "ter2" not in page and "scheduler:********************@db.internal" in page


# --- control characters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["instance_id", "name"])
def test_names_with_control_characters_are_refused(host, field):
    status, body = host.register(registration(**{field: "etl\n2026-12-05 INFO forged line"}))
    assert status == 400 and body["details"]["field"] == field


def test_a_task_name_with_a_line_break_is_refused(api):
    status, body = api.post("/api/v1/tasks", {"name": "nightly\rforged", "cron_expression": "0 0 * * * *"})
    assert status == 400 and body["details"]["field"] == "name"


def test_plain_log_lines_escape_control_characters():
    from scheduler_project.logformat import PlainFormatter

    formatter = PlainFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "executor %s refused", ("etl\nINFO forged\x1b[2J",),
                               None)
    assert formatter.format(record) == "WARNING executor etl\\nINFO forged\\x1b[2J refused"


# --- the SDK's HTTP server -------------------------------------------------------------------------------------


class Health:
    def authenticate_request(self, method, target, headers, body) -> bool:
        return True

    def http_health(self) -> Reply:
        return Reply(200, {"status": "ok"})


@pytest.fixture
def sdk_server():
    import threading

    server = ExecutorHTTPServer(("127.0.0.1", 0), Health(), read_timeout=0.5, max_connections=4)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /execute HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # and never the rest
    return sock


def test_the_sdk_server_caps_connections_and_drops_stalled_ones(sdk_server):
    port = sdk_server.server_address[1]
    held = [half_open(port) for _ in range(4)]
    extra = half_open(port)
    assert extra.recv(1024) == b""  # over the cap: closed at once, no thread for it
    began = time.monotonic()
    for sock in held:
        sock.recv(1024)  # the server gives up on each within its read timeout
    assert time.monotonic() - began < 3
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.0 200")
    for sock in [*held, extra]:
        sock.close()


# --- Content-Security-Policy -----------------------------------------------------------------------------------


def test_the_console_sends_a_content_security_policy(client):
    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
