"""Every connection opens with the session limits of settings.DATABASE_*_TIMEOUT (README "Database timeouts"),
and ``migrate`` lifts the statement limit for itself."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.skipif(connection.vendor not in ("mysql", "postgresql"),
                                reason="session limits of a database server (SQLite keeps its busy timeout)")

LIMITS_SQL = {
    "mysql": "SELECT @@innodb_lock_wait_timeout, @@lock_wait_timeout, @@max_statement_time, "
             "@@idle_transaction_timeout",
    "postgresql": "SELECT current_setting('lock_timeout'), current_setting('lock_timeout'), "
                  "current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
}


def session_limits() -> tuple[float, ...]:
    """(row lock wait, table lock wait, statement, idle transaction) in seconds."""
    with connection.cursor() as cursor:
        cursor.execute(LIMITS_SQL[connection.vendor])
        values = cursor.fetchone()
    return tuple(float(str(value).removesuffix("s")) if str(value) != "0" else 0.0 for value in values)


def test_each_connection_opens_with_the_configured_limits(db):
    lock, statement, idle = (settings.DATABASE_LOCK_TIMEOUT, settings.DATABASE_STATEMENT_TIMEOUT,
                             settings.DATABASE_IDLE_TRANSACTION_TIMEOUT)
    assert session_limits() == (lock, lock, statement, idle)


def test_migrate_runs_without_the_statement_limit(transactional_db):
    seen = []
    with connection.execute_wrapper(lambda execute, sql, *rest: seen.append(sql) or execute(sql, *rest)):
        call_command("migrate", verbosity=0)
    assert {"SET SESSION max_statement_time = 0", "SET statement_timeout = 0"} & set(seen)
    assert session_limits()[2] == settings.DATABASE_STATEMENT_TIMEOUT, "the limit stayed lifted after migrate"
