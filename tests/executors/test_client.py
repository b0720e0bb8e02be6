"""executors.client: stop instructions are signed; https keeps the host name for TLS."""

import json

import pytest

from executions.choices import ExecutionStatus
from executions.services import notify_executor_stop
from executors.client import Unreachable, post_json, post_soon, prepare, prepare_post
from executors.netguard import RefusedURL
from tests.scheduling.loopback_executor import LoopbackExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def test_stop_is_signed_with_the_executors_secret(make_task, make_executor, make_execution_row):
    server = LoopbackExecutor()
    server.status = 200
    try:
        executor = make_executor(base_url=server.url + "/base/")
        execution = make_execution_row(executor)
        assert notify_executor_stop(execution.pk) is True
        [request] = server.received
        assert (request.method, request.target) == ("POST", "/base/stop")
        assert request.signature_problem(executor.secret) is None
        assert request.signature_problem("another-secret") == "bad signature"
    finally:
        server.close()


def test_an_executor_without_a_secret_is_never_called(make_executor, make_execution_row, caplog):
    executor = make_executor(base_url="http://127.0.0.1:9")
    executor.secret = ""
    executor.save()
    assert notify_executor_stop(make_execution_row(executor).pk) is False
    assert "has no signing secret" in caplog.text


def test_https_goes_to_the_checked_address_and_verifies_the_host_name(make_executor, fake_dns):
    fake_dns["executor.example"] = ["10.1.2.3"]
    executor = make_executor(base_url="https://executor.example:8443")
    request = prepare(executor, "GET", "https://executor.example:8443/health")
    assert (request.url.host, request.url.port) == ("10.1.2.3", 8443)
    assert request.headers["Host"] == "executor.example:8443"
    assert request.server_name == "executor.example"  # TLS SNI and the name the certificate must match


def test_the_path_goes_out_exactly_as_signed(make_executor):
    server = LoopbackExecutor()
    server.status = 202
    try:
        executor = make_executor(base_url=server.url)
        answer = post_json(executor, server.url + "/a%2Fb/execute?x=1%202", {"k": "v"}, timeout=5)
        assert answer.ok and answer.status_code == 202
        [request] = server.received
        assert request.target == "/a%2Fb/execute?x=1%202"
        assert request.signature_problem(executor.secret) is None
    finally:
        server.close()


def test_prepared_posts_go_out_in_a_batch_with_a_future_each_and_a_refused_one_is_never_prepared(make_executor):
    server = LoopbackExecutor()
    server.status = 503
    try:
        executor = make_executor(base_url=server.url)
        requests = [prepare_post(executor, server.url + "/execute", {"n": n}) for n in (1, 2)]
        first, second = post_soon(requests, timeout=5)
        assert [first.result(10).status_code, second.result(10).status_code] == [503, 503]
        assert sorted(json.loads(request.body)["n"] for request in server.received) == [1, 2]
        refused = make_executor(base_url="http://169.254.169.254")
        with pytest.raises(RefusedURL):  # refused before anything is sent
            prepare_post(refused, "http://169.254.169.254/execute", {})
    finally:
        server.close()


def test_an_unreachable_executor_raises_unreachable(make_executor):
    executor = make_executor(base_url="http://127.0.0.1:9")
    with pytest.raises(Unreachable):
        post_json(executor, "http://127.0.0.1:9/execute", {}, timeout=2)


@pytest.fixture
def make_execution_row(make_task):
    from datetime import UTC, datetime

    from executions.models import TaskExecution

    def make(executor):
        return TaskExecution.objects.create(task=make_task(), executor=executor, status=ExecutionStatus.CANCELLED,
                                            scheduled_time=datetime(2030, 1, 1, tzinfo=UTC))

    return make


def test_an_executor_that_never_answers_raises_unreachable_at_the_timeout(make_executor):
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        executor = make_executor(base_url=url)
        [future] = post_soon([prepare_post(executor, url + "/execute", {})], timeout=0.3)
        with pytest.raises(Unreachable, match="TimeoutError"):
            future.result(5)
