"""An executor's credentials: the registration key it registers with, and the secret it receives in return.

Outgoing (a ``requests`` auth hook, run when each request is sent, so a result re-sent by the outbox is
signed afresh): ``POST /executors/register`` carries ``Authorization: Bearer <registration key>``; every
other request is signed with the secret (``scheduler_sdk.signing``), naming this executor.

Incoming (``/execute``, ``/stop``, ``/health``): accepted only when signed with the secret, fresh and not
replayed. Until a registration has succeeded there is no secret, so every request is refused: fail closed.
The scheduler may dispatch in the moment between recording a registration and the executor reading the
secret from its answer, so a request arriving before the first secret waits briefly for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from scheduler_sdk.signing import MemoryNonceStore, SignatureError, signature_headers, verify

log = logging.getLogger("scheduler_sdk.credentials")

REGISTRATION_KEY_ENV = "SCHEDULER_REGISTRATION_KEY"
REGISTER_PATH_SUFFIX = "/executors/register"
FIRST_SECRET_WAIT_SECONDS = 2.0


class ExecutorCredentials(AuthBase):
    """Holds the registration key and the signing secret; signs what goes out, verifies what comes in.

    ``clock`` returns Unix time (seconds); tests inject one.
    """

    def __init__(self, registration_key: str | None = None, *, clock: Callable[[], float] | None = None) -> None:
        key = registration_key if registration_key is not None else os.environ.get(REGISTRATION_KEY_ENV, "")
        self._registration_key = key.strip()
        self._clock = clock
        self._lock = threading.Lock()
        self._secret = ""
        self._secret_arrived = threading.Event()
        self._executor_id: str | None = None
        self._nonces = MemoryNonceStore()

    def __repr__(self) -> str:  # never the key or the secret
        return f"ExecutorCredentials(executor_id={self._executor_id!r}, has_secret={bool(self._secret)})"

    @property
    def has_secret(self) -> bool:
        with self._lock:
            return bool(self._secret)

    def accept_registration(self, data: object) -> object:
        """Keeps the secret (and id) from a registration response; returns the response without the secret."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        secret = data.pop("secret", None)
        with self._lock:
            if data.get("id") is not None:
                self._executor_id = str(data["id"])
            if isinstance(secret, str) and secret:
                self._secret = secret
                self._secret_arrived.set()
            elif not self._secret:
                log.error("the scheduler's registration response carries no signing secret: requests from the "
                          "scheduler will be refused and results cannot be signed")
        return data

    def _now(self) -> float | None:
        return None if self._clock is None else self._clock()

    # -- outgoing -------------------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(request.url or "").path
        if path.endswith(REGISTER_PATH_SUFFIX):
            if self._registration_key:
                request.headers["Authorization"] = f"Bearer {self._registration_key}"
            return request
        with self._lock:
            secret, executor_id = self._secret, self._executor_id
        if secret:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            request.headers.update(signature_headers(secret, request.method or "GET", request.path_url, body,
                                                     executor_id=executor_id, now=self._now()))
        return request

    # -- incoming -------------------------------------------------------------------------------------

    def verify_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The executor server's check of a request from the scheduler (``path`` is the raw request target)."""
        self._secret_arrived.wait(FIRST_SECRET_WAIT_SECONDS)
        with self._lock:
            secret = self._secret
        if not secret:
            log.warning("refused %s %s: not registered yet, so no secret to verify it with", method, path)
            return False
        try:
            verify(secret, method, path, body, headers, remember_nonce=self._nonces, now=self._now())
        except SignatureError as exc:
            log.warning("refused %s %s: %s", method, path, exc.reason)
            return False
        return True
