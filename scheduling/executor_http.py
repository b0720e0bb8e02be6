"""HTTP to executors: one pooled session, no redirects (a redirect could carry a request to another host)."""

from __future__ import annotations

import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

_local = threading.local()


def session() -> requests.Session:
    """A pooled session per thread: requests.Session is not documented as thread-safe."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=32, max_retries=0)
        current.mount("http://", adapter)
        current.mount("https://", adapter)
        current.trust_env = False
        _local.session = current
    return current


def post_json(url: str, payload: dict[str, Any], *, timeout: float) -> requests.Response:
    return session().post(url, json=payload, timeout=timeout, allow_redirects=False)


def get(url: str, *, timeout: float) -> requests.Response:
    return session().get(url, timeout=timeout, allow_redirects=False)
