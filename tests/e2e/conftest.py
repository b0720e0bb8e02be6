"""Fixtures that start real processes: every child is ended at teardown, before the database is flushed."""

from __future__ import annotations

import pytest

from tests.processes import Cluster, Processes, attach_child_logs, child_database_url, child_log_dir


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    attach_child_logs(item, report)
    return report


@pytest.fixture
def procs(request, transactional_db):
    """Children share the test database, so what the test writes must be committed: transactional_db."""
    processes = Processes(child_database_url(), log_dir=child_log_dir(request.node.nodeid))
    request.node.child_processes = processes
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def cluster(procs):
    return Cluster(procs)
