"""Signed messages between the scheduler and its executors (pure: no Django, no I/O).

Both directions use the same scheme, with the executor's own secret (handed out at registration):

    canonical = "v1\\n" + METHOD + "\\n" + path_with_query + "\\n" + timestamp + "\\n" + nonce + "\\n"
                + sha256_hex(body)
    X-Scheduler-Signature: v1=<hex HMAC-SHA256(secret, canonical)>

``timestamp`` is Unix seconds; a message more than ``MAX_AGE_SECONDS`` away from the receiver's clock is
stale. ``nonce`` is unique and single-use: the receiver remembers it for ``NONCE_TTL_SECONDS`` (twice the
age window, since a message may arrive up to the window early or late) and refuses it a second time.
Messages from an executor also carry ``X-Scheduler-Executor`` so the receiver knows whose secret to use.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping

VERSION = "v1"
HEADER_TIMESTAMP = "X-Scheduler-Timestamp"
HEADER_NONCE = "X-Scheduler-Nonce"
HEADER_SIGNATURE = "X-Scheduler-Signature"
HEADER_EXECUTOR = "X-Scheduler-Executor"

MAX_AGE_SECONDS = 300
NONCE_TTL_SECONDS = 2 * MAX_AGE_SECONDS
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")

# remember_nonce(nonce, now) -> True if first seen (and now remembered), False if seen before.
NonceStore = Callable[[str, float], bool]


class SignatureError(Exception):
    """A message that must be refused; ``reason`` says why (safe to log and to answer with)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([VERSION, method.upper(), path, timestamp, nonce, hashlib.sha256(body or b"").hexdigest()])


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The signature header's value, ``v1=<hex>``."""
    if not secret:
        raise ValueError("no signing secret: refusing to sign (an empty secret would sign for anyone)")
    message = canonical_string(method, path, timestamp, nonce, body).encode()
    return f"{VERSION}=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class _Nonces:
    """Unique nonces without a system call each: a random per-process prefix and a counter. A nonce must
    never repeat (the receiver refuses a second use), not be unpredictable: the signature covers it. (A
    burst of dispatches paid a getrandom() per request, and the GIL hand-off around each.)"""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)  # a forked child must not repeat its parent's

    def reseed(self) -> None:
        self._prefix = secrets.token_urlsafe(12)
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


_nonces = _Nonces()


def signature_headers(secret: str, method: str, path: str, body: bytes, *, executor_id: str | None = None,
                      now: float | None = None) -> dict[str, str]:
    """Headers that sign one request. ``path`` is the request target as sent: path plus ``?query``."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = _nonces.next()
    headers = {
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(secret, method, path, timestamp, nonce, body),
    }
    if executor_id is not None:
        headers[HEADER_EXECUTOR] = str(executor_id)
    return headers


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, whatever the case of its name in ``headers`` ("" when absent)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return (value or "").strip()


def verify(secret: str, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
           remember_nonce: NonceStore, now: float | None = None, max_age: float = MAX_AGE_SECONDS) -> None:
    """Accepts a signed message or raises SignatureError with the reason.

    Checks, in order: headers present, signature (constant-time), freshness, and only then the nonce,
    so forged or stale messages never fill the nonce store.
    """
    if not secret:
        raise SignatureError("no secret to verify with (not registered yet?)")
    timestamp, nonce, signature = (header(headers, name) for name in (HEADER_TIMESTAMP, HEADER_NONCE,
                                                                      HEADER_SIGNATURE))
    missing = [name for name, value in ((HEADER_TIMESTAMP, timestamp), (HEADER_NONCE, nonce),
                                        (HEADER_SIGNATURE, signature)) if not value]
    if missing:
        raise SignatureError(f"unsigned request: missing {', '.join(missing)}")
    if not _TIMESTAMP.match(timestamp) or not _NONCE.match(nonce):
        raise SignatureError("malformed timestamp or nonce")
    expected = sign(secret, method, path, timestamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("bad signature")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_age:
        raise SignatureError(f"stale request: timestamp {timestamp} is more than {max_age:g} s from now")
    if not remember_nonce(nonce, current):
        raise SignatureError("replayed request: nonce already used")


class MemoryNonceStore:
    """Nonces seen in the last ``ttl`` seconds, in memory: for one receiving process (the SDK)."""

    def __init__(self, ttl: float = NONCE_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._seen: dict[str, float] = {}
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def __call__(self, nonce: str, now: float) -> bool:
        with self._lock:
            if now >= self._next_purge:  # at most every few seconds, not on every message
                self._seen = {n: at for n, at in self._seen.items() if now - at <= self._ttl}
                self._next_purge = now + min(self._ttl / 10, 10.0)
            seen_at = self._seen.get(nonce)
            if seen_at is not None and now - seen_at <= self._ttl:
                return False
            self._seen[nonce] = now
            return True
