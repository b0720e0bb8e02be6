"""Leader election: one lock per cluster, held on a connection of its own.

- MySQL/MariaDB: ``GET_LOCK``. It belongs to the session, not the transaction, so it lives on a dedicated
  raw connection that Django never recycles (``CONN_MAX_AGE``, ``close_old_connections``). The session's
  ``wait_timeout`` is short and the lock is pinged every tick and by the node's keep-alive thread (so a
  tick step longer than the timeout does not lose it), so a frozen (SIGSTOPped) leader's session is closed
  by the server, which frees the lock within that timeout.
- PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection with ``idle_session_timeout``.
- SQLite: an OS file lock next to the database file (one machine only).

Not supported: Galera (GET_LOCK refused under wsrep), PgBouncer transaction pooling, ProxySQL multiplexing.

The same locks make one-at-a-time jobs: :func:`held` waits for a lock, keeps it alive and releases it, so
web nodes starting together migrate one after the other (``manage.py serve``).

The lock alone cannot stop a leader that stalled and lost it from writing once it wakes (it learns of the
loss only on its next check). The ``Fence`` does: each term has a number in the database, and a leader's
writes check it in their own transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from django.db import connection, transaction
from django.db.models import F

from scheduling.models import LeaderTerm

logger = logging.getLogger(__name__)


class LeaderLock(Protocol):
    name: str
    # How often a leader must touch the lock's session so the server does not close it as idle; None when
    # the lock has no idle timeout. Calls may come from two threads (the loop and the keep-alive).
    keepalive_seconds: float | None

    def try_acquire(self) -> bool:
        """Take the lock without waiting. True if this node now holds it."""

    def still_held(self) -> bool:
        """Fencing check before each tick's writes; also keeps the lock connection alive. False if lost."""

    def release(self) -> None:
        """Give the lock up (and close its connection). Safe to call when not held."""


def lock_name(database_name: str, base: str) -> str:
    """Server-wide lock names must be unique per database, ≤ 64 characters and lowercase (PITFALLS)."""
    name = f"{database_name}.{base}".lower()
    if len(name) > 64:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]
        name = f"{name[:47]}.{digest}"
    return name


class _SessionLock:
    """A lock owned by a database session: shared logic of the MySQL and PostgreSQL locks.

    Subclasses say how to connect, and how to take, test and give up the lock on that session.
    """

    def __init__(self, settings_dict: dict[str, Any], base_name: str, idle_timeout: int) -> None:
        self.settings = settings_dict
        self.name = lock_name(settings_dict["NAME"], base_name)
        self.idle_timeout = idle_timeout
        self.keepalive_seconds = max(0.5, idle_timeout / 4)
        self._conn: Any = None
        self._mutex = threading.Lock()  # one connection, two threads: the loop and the keep-alive

    def _connect(self) -> Any:
        raise NotImplementedError

    def _scalar(self, sql: str, args: tuple = ()) -> Any:
        raise NotImplementedError

    def _held(self) -> bool:
        raise NotImplementedError

    def _take(self) -> bool:
        raise NotImplementedError

    def _give(self) -> None:
        raise NotImplementedError

    def try_acquire(self) -> bool:
        with self._mutex:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._connect()
            # Both locks stack per session: never take it twice, or one release would not free it.
            return self._held() or self._take()
        except Exception as exc:  # any driver error means "not acquired"; the next attempt reconnects
            logger.warning("leader lock %s: acquire failed: %s", self.name, exc)
            self._drop()
            return False

    def still_held(self) -> bool:
        with self._mutex:
            return self._still_held()

    def _still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            return self._held()
        except Exception as exc:  # a lost session (error 2006 after a freeze) means the lock is gone
            logger.warning("leader lock %s: lost: %s", self.name, exc)
            self._drop()
            return False

    def release(self) -> None:
        with self._mutex:
            self._release()

    def _release(self) -> None:
        if self._conn is None:
            return
        try:
            self._give()
        except Exception as exc:
            logger.info("leader lock %s: release failed (%s); closing the session frees it", self.name, exc)
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110 - already broken; closing is best effort
                pass
        self._conn = None


class MySQLLock(_SessionLock):
    def _connect(self) -> Any:
        import MySQLdb

        options = self.settings
        conn = MySQLdb.connect(
            host=options.get("HOST") or "127.0.0.1", port=int(options.get("PORT") or 3306),
            user=options.get("USER") or "root", password=options.get("PASSWORD") or "",
            database=options["NAME"], connect_timeout=5, autocommit=True,
        )
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION wait_timeout = %s", (self.idle_timeout,))
        return conn

    def _scalar(self, sql: str, args: tuple = ()) -> Any:
        with self._conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()[0]

    def _held(self) -> bool:
        return self._scalar("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.name,)) == 1

    def _take(self) -> bool:
        return self._scalar("SELECT GET_LOCK(%s, 0)", (self.name,)) == 1

    def _give(self) -> None:
        self._scalar("SELECT RELEASE_LOCK(%s)", (self.name,))


class PostgresLock(_SessionLock):
    def __init__(self, settings_dict: dict[str, Any], base_name: str, idle_timeout: int) -> None:
        super().__init__(settings_dict, base_name, idle_timeout)
        digest = hashlib.sha1(self.name.encode(), usedforsecurity=False).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def _connect(self) -> Any:
        import psycopg

        options = self.settings
        conn = psycopg.connect(
            host=options.get("HOST") or "127.0.0.1", port=int(options.get("PORT") or 5432),
            user=options.get("USER") or None, password=options.get("PASSWORD") or None,
            dbname=options["NAME"], connect_timeout=5, autocommit=True,
        )
        conn.execute(f"SET idle_session_timeout = '{int(self.idle_timeout)}s'")
        return conn

    def _scalar(self, sql: str, args: tuple = ()) -> Any:
        return self._conn.execute(sql, args).fetchone()[0]

    def _held(self) -> bool:
        return bool(self._scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
            "AND classid = ((%s::bigint >> 32) & 4294967295)::oid AND objid = (%s::bigint & 4294967295)::oid "
            "AND objsubid = 1",
            (self.key, self.key),
        ))

    def _take(self) -> bool:
        return bool(self._scalar("SELECT pg_try_advisory_lock(%s)", (self.key,)))

    def _give(self) -> None:
        self._scalar("SELECT pg_advisory_unlock(%s)", (self.key,))


class FileLock:
    """SQLite runs on one machine: an exclusive ``flock`` on a file beside the database elects the leader."""

    def __init__(self, database_path: str, base_name: str) -> None:
        path = Path(database_path)
        self.path = path.with_name(f"{path.name}.{base_name}.lock")
        self.name = str(self.path)
        self.keepalive_seconds = None  # an OS lock has no session to time out
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_for_database(settings_dict: dict[str, Any], base_name: str, idle_timeout: int) -> LeaderLock:
    engine = settings_dict["ENGINE"]
    if engine.endswith("mysql"):
        return MySQLLock(settings_dict, base_name, idle_timeout)
    if engine.endswith("postgresql"):
        return PostgresLock(settings_dict, base_name, idle_timeout)
    if engine.endswith("sqlite3"):
        return FileLock(settings_dict["NAME"], base_name)
    raise ValueError(f"no leader lock for database engine {engine}")


@contextlib.contextmanager
def held(lock: LeaderLock, *, wait_seconds: float, poll_seconds: float = 0.5,
         on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Runs the body holding ``lock``: takes it, polling every ``poll_seconds`` (``on_wait`` is called once
    if it has to wait), raises TimeoutError if it is still taken after ``wait_seconds``; touches its session
    every ``keepalive_seconds`` while the body runs (a migration outlasts the idle timeout that frees a
    frozen holder's lock); releases it at the end. A process killed in the body frees it with its session."""
    deadline = time.monotonic() + wait_seconds
    waited = False
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"lock {lock.name} still taken after {wait_seconds:g} s")
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(poll_seconds)
    done = threading.Event()
    if lock.keepalive_seconds:
        threading.Thread(target=_keep_alive, args=(lock, done), name="lock-keepalive", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        lock.release()


def _keep_alive(lock: LeaderLock, done: threading.Event) -> None:
    while not done.wait(lock.keepalive_seconds):
        if not lock.still_held():
            logger.warning("lock %s was lost while held (its session ended)", lock.name)
            return


class Deposed(Exception):
    """This node's leadership term is over (another node was elected since): its write was refused."""


class Fence:
    """The leadership term this node was elected for, checked inside each of its write transactions.

    ``begin()`` runs right after the lock is taken: it increments the lock's term (LeaderTerm) and keeps
    the new number. ``atomic()`` opens a transaction that first reads the current term with a shared row
    lock (``LOCK IN SHARE MODE`` / ``FOR SHARE``; SQLite's IMMEDIATE transactions hold its one write lock
    from their start) and raises ``Deposed`` unless it is still ours. The row lock makes a new leader's
    increment wait for the transactions a deposed leader has under way, and any transaction begun after the
    increment sees the new term: a late write of a deposed leader is refused by the database, not just
    unlikely. The lock is shared so that the leader's own writers never wait for each other: the firing
    thread (fires), the loop thread (claims) and the sweeps' workers (timeouts, lost runs). (A leader frozen
    inside a transaction holds up the next election until the server ends that idle transaction:
    ``idle_transaction_timeout`` / ``idle_in_transaction_session_timeout``, see the README.)
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.term: int | None = None

    def begin(self, holder: str, now: datetime) -> int:
        """Start a new term (call while holding the leader lock). Returns its number."""
        with transaction.atomic():
            terms = LeaderTerm.objects.filter(name=self.name)
            if not terms.update(term=F("term") + 1, holder=holder, started_at=now):
                LeaderTerm.objects.create(name=self.name, term=1, holder=holder, started_at=now)
            self.term = terms.values_list("term", flat=True).get()
        return self.term

    def end(self) -> None:
        self.term = None

    def check(self) -> None:
        """Raises Deposed unless our term is the current one. Call inside the transaction it guards."""
        if self.term is None:
            raise Deposed("not leading")
        current = current_term_shared(self.name)
        if current != self.term:
            raise Deposed(f"term {self.term} is over: the current term is {current}")

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction whose writes commit only if our term is still the current one."""
        with transaction.atomic():
            self.check()
            yield


def current_term_shared(name: str) -> int | None:
    """The lock's current term, read with a shared row lock held to the end of the transaction: a new term's
    increment waits for it, and any number of this leader's own fenced transactions hold it together (the
    loop's claims and the firing thread's fires do not wait for each other). SQLite's IMMEDIATE transaction
    already holds its one write lock."""
    table = connection.ops.quote_name(LeaderTerm._meta.db_table)
    shared = {"mysql": " LOCK IN SHARE MODE", "postgresql": " FOR SHARE"}.get(connection.vendor, "")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT term FROM {table} WHERE name = %s{shared}", [name])  # noqa: S608 - quoted name
        row = cursor.fetchone()
    return None if row is None else row[0]


class Unfenced:
    """For steps run outside a leadership term (tests of one step): a plain transaction."""

    term = None

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        with transaction.atomic():
            yield


UNFENCED = Unfenced()
