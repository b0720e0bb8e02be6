"""SchedulerClient given several web nodes: a refused connection moves on to the next address at once; a
request that may have been applied raises and is left to the caller, with the next address current."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from scheduler_sdk import SchedulerClient, SchedulerUnavailable
from scheduler_sdk.client import base_urls
from tests.sdk.fake_scheduler import ok


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:  # nobody listens on this port once the socket is closed
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers: a frozen web node."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_addresses_come_as_a_list_or_comma_separated():
    assert base_urls("http://a:8000/, https://b:8443") == ["http://a:8000", "https://b:8443"]
    assert base_urls(["http://a:8000"]) == ["http://a:8000"]
    for bad in ("", " , ", "a:8000", ["http://a", "ftp://b"]):
        with pytest.raises(ValueError):
            base_urls(bad)


def test_a_refused_address_is_skipped_at_once_and_the_next_one_stays_in_use(scheduler, refused_url, caplog):
    scheduler.script("GET", "/api/v1/tasks/t-1", ok({"id": "t-1"}), ok({"id": "t-1"}))
    client = SchedulerClient(f"{refused_url},{scheduler.url}", timeout=2)
    assert client.get_task("t-1") == {"id": "t-1"}
    assert client.base_url == scheduler.url
    assert f"scheduler {refused_url} unreachable" in caplog.text and f"using {scheduler.url}" in caplog.text
    assert client.get_task("t-1") == {"id": "t-1"}
    assert len(scheduler.seen("GET", "/api/v1/tasks/t-1")) == 2


def test_a_request_that_may_have_been_applied_raises_and_the_next_address_becomes_current(scheduler,
                                                                                         silent_url):
    scheduler.script("POST", "/api/v1/tasks", ok({"id": "t-2"}, status=201))
    client = SchedulerClient([silent_url, scheduler.url], timeout=0.3)
    with pytest.raises(SchedulerUnavailable):
        client.create_task(name="n")  # not re-sent: the silent node may have created it
    assert scheduler.seen("POST", "/api/v1/tasks") == []
    assert client.base_url == scheduler.url
    assert client.create_task(name="n") == {"id": "t-2"}


def test_every_address_refused_raises_unavailable(refused_url):
    client = SchedulerClient([refused_url, refused_url + "/"], timeout=2)
    with pytest.raises(SchedulerUnavailable):
        client.health()


def test_a_derived_client_keeps_every_address(scheduler, refused_url):
    scheduler.script("GET", "/api/v1/health", ok({"status": "ok"}))
    derived = SchedulerClient([refused_url, scheduler.url]).with_auth(lambda request: {"X-Test": "1"})
    assert derived.base_urls == [refused_url, scheduler.url]
    assert derived.health() == {"status": "ok"}
    assert scheduler.seen("GET", "/api/v1/health")[0].headers["X-Test"] == "1"
