"""A SECRET_KEY for this installation when the environment sets none: random, made once, kept in a file only
this user can read (0600). A public default key would let anyone sign sessions and JWTs."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def installation_secret_key(path: Path) -> str:
    """The key in ``path``, created there first if missing. Processes starting together agree: the file is
    written whole under a temporary name and linked into place, so it appears complete or not at all."""
    for _ in range(50):
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            _create(path)
            continue
        if key:
            return key
        time.sleep(0.05)  # an empty file made by hand: refuse it below rather than use it
    raise RuntimeError(f"{path} holds no SECRET_KEY: delete it (a new one is made) or set SECRET_KEY")


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(50) + "\n")
    try:
        os.link(temporary, path)  # fails if another process was first: its key wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
