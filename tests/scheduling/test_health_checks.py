from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from executors import netguard
from executors.choices import ExecutorStatus
from executors.models import Executor
from scheduling.health import HealthChecker, health_url, probe
from tests.scheduling.conftest import T0
from tests.scheduling.loopback_executor import LoopbackExecutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def checker(clock):
    pool = ThreadPoolExecutor(max_workers=2)
    instance = HealthChecker(clock=clock, pool=pool)
    instance.results = {}
    instance.probed = []

    def probe(executor, timeout):
        url = health_url(executor)
        instance.probed.append(url)
        return instance.results.get(url, True)

    instance.probe = probe
    yield instance
    pool.shutdown(wait=True)


def run_round(checker, now):
    started = checker.check_health(now)
    for future in checker._round:
        future.result(timeout=10)
    return started


def test_three_failed_checks_mark_unhealthy_and_two_successes_recover(make_executor, checker, clock, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEALTH_CHECK_INTERVAL_SECONDS": 30}
    executor = make_executor(health_check_url="http://127.0.0.1:1/health")
    checker.results[executor.health_check_url] = False
    seen = []
    for round_number in range(5):
        if round_number == 3:
            checker.results[executor.health_check_url] = True
        run_round(checker, T0 + timedelta(seconds=30 * round_number))
        executor.refresh_from_db()
        seen.append((executor.is_healthy, executor.health_check_failures))
    assert seen == [(True, 1), (True, 2), (False, 3), (False, 0), (True, 0)]
    assert executor.last_health_check == clock.now


def test_rounds_respect_the_interval(make_executor, checker, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEALTH_CHECK_INTERVAL_SECONDS": 30}
    make_executor()
    assert run_round(checker, T0) == 1
    assert run_round(checker, T0 + timedelta(seconds=29)) == 0
    assert run_round(checker, T0 + timedelta(seconds=30)) == 1


def test_only_online_executors_are_checked(make_executor, checker):
    online = make_executor()
    make_executor(status=ExecutorStatus.MAINTENANCE)
    make_executor(status=ExecutorStatus.OFFLINE)
    run_round(checker, T0)
    assert checker.probed == [online.base_url + "/health"]
    assert Executor.objects.get(pk=online.pk).last_health_check is not None


def test_health_check_is_a_signed_get_of_the_health_url(make_executor):
    server = LoopbackExecutor()
    try:
        executor = make_executor(base_url=server.url, health_check_url=f"{server.url}/healthz?deep=1")
        assert probe(executor, timeout=5) is True
        [request] = server.received
        assert (request.method, request.target) == ("GET", "/healthz?deep=1")
        assert request.signature_problem(executor.secret) is None
    finally:
        server.close()


def test_health_check_towards_a_metadata_address_fails_without_a_request(make_executor, monkeypatch, caplog):
    monkeypatch.setattr(netguard, "resolve", lambda host, port: ["169.254.169.254"])
    executor = make_executor(base_url="http://rebound.example:9000")
    assert probe(executor, timeout=5) is False
    assert "not sent: SSRF guard: rebound.example: 169.254.169.254" in caplog.text


def test_an_executor_that_registers_between_rounds_is_checked_at_once(make_executor, checker, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEALTH_CHECK_INTERVAL_SECONDS": 30}
    make_executor()
    assert run_round(checker, T0) == 1
    newcomer = make_executor()  # registered (or registered again): never checked since
    assert run_round(checker, T0 + timedelta(seconds=2)) == 1
    assert checker.probed[-1] == health_url(newcomer)
    assert run_round(checker, T0 + timedelta(seconds=4)) == 0  # checked now: it waits for the next round
