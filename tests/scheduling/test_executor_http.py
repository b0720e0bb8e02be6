"""scheduling.executor_http: stop instructions are signed; https keeps the host name for TLS."""

import pytest
import requests

from executions.choices import ExecutionStatus
from scheduling.executor_http import PinnedAddressAdapter
from scheduling.stop import notify_executor_stop
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


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_host_name():
    prepared = requests.Request("GET", "https://10.1.2.3:8443/health").prepare()
    prepared.server_name = "executor.example"
    host, pool = PinnedAddressAdapter().build_connection_pool_key_attributes(prepared, verify=True)
    assert host["host"] == "10.1.2.3"
    assert pool["server_hostname"] == pool["assert_hostname"] == "executor.example"


@pytest.fixture
def make_execution_row(make_task):
    from datetime import UTC, datetime

    from executions.models import TaskExecution

    def make(executor):
        return TaskExecution.objects.create(task=make_task(), executor=executor, status=ExecutionStatus.CANCELLED,
                                            scheduled_time=datetime(2030, 1, 1, tzinfo=UTC))

    return make
