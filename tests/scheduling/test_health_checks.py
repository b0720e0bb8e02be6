from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from executors.choices import ExecutorStatus
from executors.models import Executor
from scheduling.health import HealthChecker
from tests.scheduling.conftest import T0

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def checker(clock):
    pool = ThreadPoolExecutor(max_workers=2)
    instance = HealthChecker(clock=clock, pool=pool)
    instance.results = {}
    instance.probed = []

    def probe(url, timeout):
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
