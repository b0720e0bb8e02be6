"""The same process fixtures as the end-to-end tests (they end every child at teardown)."""

from tests.e2e.conftest import cluster, procs, pytest_runtest_makereport  # noqa: F401
