"""An executor's credentials: the registration key it registers with, and the secret it receives in return.

Outgoing (a ``requests`` auth hook, run when each request is sent, so a result re-sent by the outbox is
signed afresh): ``POST /executors/register`` carries ``Authorization: Bearer <registration key>``; every
other request is signed with the secret (``scheduler_sdk.signing``), naming this executor.

Incoming (``/execute``, ``/stop``, ``/health``): accepted only when signed with the secret, fresh and not
replayed. Until a registration has succeeded there is no secret, so every request is refused: fail closed.
The scheduler may dispatch in the moment between recording a registration and the executor reading the
secret from its answer, so a request arriving before the first secret waits briefly for it.

The secret survives restarts in a file only this user can read (mode 0600, ``SecretFile``): re-registering
an executor the scheduler knows needs the registration request signed with that executor's secret (the
registration key alone only creates new executors), so the SDK signs it whenever it holds one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from scheduler_sdk.signing import MemoryNonceStore, SignatureError, signature_headers, verify

log = logging.getLogger("scheduler_sdk.credentials")

REGISTRATION_KEY_ENV = "SCHEDULER_REGISTRATION_KEY"
SECRET_FILE_ENV = "SCHEDULER_SECRET_FILE"  # noqa: S105 - the name of a setting
REGISTER_PATH_SUFFIX = "/executors/register"
FIRST_SECRET_WAIT_SECONDS = 2.0
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def default_secret_path(instance_id: str, template: str | None = None) -> Path:
    """Where an executor keeps its secret: ``template`` (default: env SCHEDULER_SECRET_FILE, else
    ``$XDG_STATE_HOME/scheduler-sdk/{instance_id}.json``, ``~/.local/state`` without XDG_STATE_HOME), with
    ``{instance_id}`` replaced by the instance id made safe for a file name."""
    if template is None:
        template = os.environ.get(SECRET_FILE_ENV) or ""
    if not template:
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        template = os.path.join(state, "scheduler-sdk", "{instance_id}.json")
    return Path(template.replace("{instance_id}", _UNSAFE_FILE_CHARACTERS.sub("_", instance_id)))


class SecretFile:
    """This executor's id and secret on disk, readable by its user only (0600, written atomically)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SecretFile({str(self.path)!r})"

    def load(self) -> tuple[str, str] | None:
        try:
            mode = self.path.stat().st_mode
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("cannot read the executor secret file %s (%s): registering without it", self.path, exc)
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("executor secret file %s is readable by others; making it 0600", self.path)
            os.chmod(self.path, 0o600)
        if not isinstance(data, dict) or not data.get("executor_id") or not data.get("secret"):
            return None
        return str(data["executor_id"]), str(data["secret"])

    def save(self, executor_id: str, secret: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"executor_id": executor_id, "secret": secret}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


class ExecutorCredentials(AuthBase):
    """Holds the registration key and the signing secret; signs what goes out, verifies what comes in.

    ``clock`` returns Unix time (seconds); tests inject one.
    """

    def __init__(self, registration_key: str | None = None, *, clock: Callable[[], float] | None = None,
                 secret_file: SecretFile | None = None) -> None:
        key = registration_key if registration_key is not None else os.environ.get(REGISTRATION_KEY_ENV, "")
        self._registration_key = key.strip()
        self._clock = clock
        self._lock = threading.Lock()
        self._secret = ""
        self._secret_arrived = threading.Event()
        self._executor_id: str | None = None
        self._nonces = MemoryNonceStore()
        self._secret_file = secret_file
        stored = secret_file.load() if secret_file is not None else None
        if stored is not None:
            self._executor_id, self._secret = stored
            self._secret_arrived.set()

    def __repr__(self) -> str:  # never the key or the secret
        return f"ExecutorCredentials(executor_id={self._executor_id!r}, has_secret={bool(self._secret)})"

    @property
    def has_registration_key(self) -> bool:
        return bool(self._registration_key)

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
                self._keep(secret)
            elif not self._secret:
                log.error("the scheduler's registration response carries no signing secret: requests from the "
                          "scheduler will be refused and results cannot be signed")
        return data

    def _keep(self, secret: str) -> None:
        # Called with the lock held: the file and the memory never disagree about the secret.
        changed = secret != self._secret
        self._secret = secret
        self._secret_arrived.set()
        if changed and self._secret_file is not None and self._executor_id is not None:
            try:
                self._secret_file.save(self._executor_id, secret)
            except OSError as exc:
                log.error("cannot store the executor secret in %s (%s): after a restart this executor cannot "
                          "re-register without an admin", self._secret_file.path, exc)

    def _now(self) -> float | None:
        return None if self._clock is None else self._clock()

    # -- outgoing -------------------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(request.url or "").path
        registering = path.endswith(REGISTER_PATH_SUFFIX)
        if registering and self._registration_key:
            request.headers["Authorization"] = f"Bearer {self._registration_key}"
        with self._lock:
            secret, executor_id = self._secret, self._executor_id
        # A registration is signed too when a secret is held: the proof that re-registers this executor.
        if secret and (executor_id is not None or not registering):
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
