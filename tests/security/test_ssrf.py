"""Finding 4: executor URLs at 0.0.0.0, [::], loopback and private addresses were accepted without an
allowlist, IPv6 forms that carry a link-local IPv4 address were not recognised, and the first bytes of a
non-HTTP answer (a Redis banner with its password) were copied into execution logs viewers read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from executors.client import Unreachable, post_json
from tests.security.conftest import registration

PROJECT = Path(__file__).resolve().parents[2]
METADATA_IN_IPV6 = {
    "v4-compatible": "http://[::a9fe:a9fe]",
    "v4-translated": "http://[::ffff:0:a9fe:a9fe]",
    "v4-mapped": "http://[::ffff:169.254.169.254]",
    "6to4": "http://[2002:a9fe:a9fe::1]",
    "nat64": "http://[64:ff9b::a9fe:a9fe]",
    "nat64-local-48": "http://[64:ff9b:1:a9fe:a9:fe00::]",
    "nat64-local-96": "http://[64:ff9b:1::a9fe:a9fe]",
    "teredo": "http://[2001:0:4136:e378:8000:63bf:5601:5601]",
    "isatap": "http://[2001:db8::5efe:a9fe:a9fe]",
}
NOWHERE = {"unspecified-v4": "http://0.0.0.0:9090", "this-network": "http://0.1.2.3", "unspecified-v6": "http://[::]",
           "multicast-v4": "http://224.0.0.1", "multicast-v6": "http://[ff02::1]",
           "broadcast": "http://255.255.255.255"}
INTERNAL = {"loopback": "http://127.0.0.1:9090", "localhost": "http://localhost:9090", "ten": "http://10.1.2.3",
            "private-192": "http://192.168.1.5", "cgnat": "http://100.64.0.1", "loopback-v6": "http://[::1]",
            "unique-local": "http://[fd12::1]", "mapped-loopback": "http://[::ffff:127.0.0.1]",
            "nat64-loopback": "http://[64:ff9b::7f00:1]", "6to4-private": "http://[2002:a00:1::1]"}


def refused(host, url: str) -> str:
    status, body = host.register(registration(instance_id=f"etl-{abs(hash(url))}", base_url=url))
    assert status == 400, (url, body)
    assert body["details"]["constraint"] == "forbidden_address"
    return body["error"]


@pytest.fixture
def no_allowlist(settings, fake_dns):
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = []
    fake_dns["localhost"] = ["127.0.0.1", "::1"]


@pytest.mark.parametrize("url", [*METADATA_IN_IPV6.values(), *NOWHERE.values()], ids=[*METADATA_IN_IPV6, *NOWHERE])
def test_never_allowed_addresses_are_refused_even_when_everything_is_admitted(host, settings, fake_dns, url):
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    assert "outside" not in refused(host, url)


@pytest.mark.parametrize("url", INTERNAL.values(), ids=INTERNAL.keys())
def test_without_an_allowlist_loopback_and_private_addresses_are_refused(host, no_allowlist, url):
    assert "SCHEDULER_EXECUTOR_ALLOWED_NETWORKS" in refused(host, url)


def test_without_an_allowlist_public_addresses_are_accepted(host, no_allowlist):
    assert host.register(registration(base_url="http://93.184.216.34:9090"))[0] == 201


def test_an_allowlist_admits_loopback_but_never_what_an_ipv6_form_carries(host, settings, fake_dns):
    settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = ["127.0.0.0/8", "::/0"]
    assert host.register(registration(base_url="http://127.0.0.1:9090"))[0] == 201
    refused(host, "http://[::ffff:0:a9fe:a9fe]:9090")
    refused(host, "http://[2002:a9fe:a9fe::1]:9090")


@pytest.mark.parametrize(("debug", "expected"), [("1", ["127.0.0.0/8", "::1/128"]), ("0", [])])
def test_development_admits_loopback_by_default_and_production_nothing(debug, expected):
    env = {key: value for key, value in os.environ.items() if key != "SCHEDULER_EXECUTOR_ALLOWED_NETWORKS"}
    env.update(DEBUG=debug, SECRET_KEY="x" * 50, DJANGO_SETTINGS_MODULE="scheduler_project.settings")
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.SCHEDULER_EXECUTOR_ALLOWED_NETWORKS))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


# --- what an answer may leave in the logs ---------------------------------------------------------------------


@pytest.fixture
def banner_server():
    """A non-HTTP service on loopback: it answers every connection with ``banner`` and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    state = {"banner": b""}

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(state["banner"])

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], state
    server.close()


@pytest.mark.parametrize("banner", [
    b"+OK redis ready requirepass=hunter2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Secret hunter2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: hunter2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nhunter2\r\n",
], ids=["redis-banner", "header-line", "content-length", "chunk-size"])
def test_what_a_peer_answers_never_reaches_the_error_text(banner_server, make_executor, banner):
    port, state = banner_server
    state["banner"] = banner
    executor = make_executor(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(Unreachable) as raised:
        post_json(executor, f"http://127.0.0.1:{port}/execute", {"x": 1}, timeout=5)
    assert "hunter2" not in str(raised.value) and "redis" not in str(raised.value)
