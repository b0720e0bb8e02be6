"""HTTP to executors: every request is checked by the address guard, sent to the address that was checked,
signed with the target executor's secret, and never follows a redirect (one could carry it elsewhere).

Pinning the address: the URL's host is resolved and checked once (``executors.netguard``); the request then
goes to that IP, with the original name in the Host header and, for https, as the TLS server name and the
name the certificate must match. Connection pools are keyed by IP (and that name), so keep-alive still works.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from executors.models import Executor
from executors.netguard import RefusedURL, check_url
from scheduler_sdk.signing import signature_headers

_local = threading.local()


class PinnedAddressAdapter(HTTPAdapter):
    """Verifies https certificates against the executor's host name although the URL holds its IP."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        server_name = getattr(request, "server_name", None)
        if host_params["scheme"] == "https" and server_name:
            pool_kwargs["server_hostname"] = server_name
            pool_kwargs["assert_hostname"] = server_name
        return host_params, pool_kwargs


def session() -> requests.Session:
    """A pooled session per thread: requests.Session is not documented as thread-safe."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        adapter = PinnedAddressAdapter(pool_connections=32, pool_maxsize=32, max_retries=0)
        current.mount("http://", adapter)
        current.mount("https://", adapter)
        current.trust_env = False  # no proxies from the environment: the checked address is the one reached
        _local.session = current
    return current


def send(executor: Executor, method: str, url: str, *, json: Any = None, timeout: float) -> requests.Response:
    """One signed request to ``url`` of ``executor``. Raises netguard.RefusedURL before connecting if the
    address guard refuses it (or the executor has no secret), requests exceptions otherwise."""
    if not executor.secret:  # never send an unsigned request: fail closed
        raise RefusedURL(f"executor {executor.instance_id} has no signing secret (it must register)")
    target = check_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    http = session()
    prepared = http.prepare_request(requests.Request(method, target.pinned_url(path), json=json,
                                                     headers={"Host": target.host_header}))
    prepared.server_name = target.host
    prepared.headers.update(signature_headers(executor.secret, method, prepared.path_url, prepared.body or b""))
    return http.send(prepared, timeout=timeout, allow_redirects=False)


def post_json(executor: Executor, url: str, payload: dict[str, Any], *, timeout: float) -> requests.Response:
    return send(executor, "POST", url, json=payload, timeout=timeout)


def get(executor: Executor, url: str, *, timeout: float) -> requests.Response:
    return send(executor, "GET", url, timeout=timeout)
