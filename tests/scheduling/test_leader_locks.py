"""The leader lock of whichever database the suite runs on: mutual exclusion, release, loss, names."""

import time

import pytest
from django.db import connection

from scheduling.leader import FileLock, MySQLLock, PostgresLock, held, lock_for_database, lock_name

pytestmark = pytest.mark.django_db(transaction=True)


def make_lock(tmp_path, base="test_leader_lock"):
    settings = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        return FileLock(str(tmp_path / "db.sqlite3"), base)
    return lock_for_database(settings, base, idle_timeout=30)


def test_only_one_holder_at_a_time(tmp_path):
    first, second = make_lock(tmp_path), make_lock(tmp_path)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert first.still_held() and not second.still_held()
        first.release()
        assert second.try_acquire()
        assert not first.still_held()
    finally:
        first.release()
        second.release()


def test_acquiring_twice_needs_only_one_release(tmp_path):
    first, second = make_lock(tmp_path), make_lock(tmp_path)
    try:
        assert first.try_acquire() and first.try_acquire()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="session locks only")
def test_a_killed_session_loses_the_lock_and_frees_it(tmp_path):
    holder, contender = make_lock(tmp_path), make_lock(tmp_path)
    try:
        assert holder.try_acquire()
        with connection.cursor() as cursor:
            if isinstance(holder, MySQLLock):
                cursor.execute("KILL CONNECTION %s", [holder._conn.thread_id()])
            else:
                assert isinstance(holder, PostgresLock)
                cursor.execute("SELECT pg_terminate_backend(%s)", [holder._conn.info.backend_pid])
        assert not holder.still_held()  # fencing: the next check notices
        assert contender.try_acquire()
    finally:
        holder.release()
        contender.release()


def test_lock_names_are_short_lowercase_and_per_database():
    assert lock_name("Scheduler", "Leader") == "scheduler.leader"
    long_name = lock_name("d" * 80, "scheduler_leader_lock")
    assert len(long_name) <= 64 and long_name != lock_name("e" * 80, "scheduler_leader_lock")


@pytest.mark.skipif(connection.vendor == "sqlite", reason="session locks only")
def test_a_session_lock_touched_within_its_idle_timeout_outlives_it(tmp_path):
    # The keep-alive's promise on a real server: a leader whose step outlasts the idle timeout keeps the
    # lock as long as the session is touched every keepalive_seconds. Untouched, the server frees it.
    settings = dict(connection.settings_dict)
    kept, idle, contender = (lock_for_database(settings, base, idle_timeout=2)
                             for base in ("keepalive_kept", "keepalive_idle", "keepalive_idle"))
    try:
        assert kept.try_acquire() and idle.try_acquire()
        assert kept.keepalive_seconds <= 1.0
        deadline = time.monotonic() + 3.5  # well past the 2 s idle timeout
        while time.monotonic() < deadline:
            time.sleep(kept.keepalive_seconds)
            assert kept.still_held()
        assert contender.try_acquire()  # the idle session was closed by the server, its lock freed
        assert not idle.still_held()
    finally:
        for lock in (kept, idle, contender):
            lock.release()


def test_held_waits_for_the_holder_then_gives_up_with_timeout(tmp_path):
    holder, waiter = make_lock(tmp_path), make_lock(tmp_path)
    waits = []
    try:
        assert holder.try_acquire()
        with pytest.raises(TimeoutError), held(waiter, wait_seconds=0.3, poll_seconds=0.05,
                                               on_wait=lambda: waits.append(1)):
            pytest.fail("the body ran without the lock")
        assert waits == [1]  # told once, however long it waited
    finally:
        holder.release()


def test_held_runs_the_body_holding_the_lock_and_releases_it_after(tmp_path):
    first, other = make_lock(tmp_path), make_lock(tmp_path)
    try:
        with held(first, wait_seconds=1):
            assert not other.try_acquire()
        assert other.try_acquire()
    finally:
        first.release()
        other.release()
