"""Who is asking, for the failed-authentication throttle and the login lockout: the address of the
connection's peer. ``X-Forwarded-For`` is believed only as far as it was written by trusted proxies.

With ``TRUSTED_PROXIES`` empty (the default) the header is ignored: any client can write it, so trusting it
lets every request pick a fresh identity and defeats per-address counting. Behind a reverse proxy, list the
proxies' networks: when the peer is one of them, the client is the right-most address in the header that
is not a trusted proxy (each proxy appends the address it received the request from).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from None


def _trusted(address: str) -> bool | None:
    """Whether ``address`` is a trusted proxy; None if it is not an IP address at all."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    return any(parsed.version == network.version and parsed in network
               for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request) -> str:
    """The client's IP address as text (``request`` may be Django's or DRF's)."""
    meta = request.META
    peer = meta.get("REMOTE_ADDR", "") or "unknown"
    if not settings.TRUSTED_PROXIES or not _trusted(peer):
        return peer
    client = peer
    for hop in reversed([hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]):
        trusted = _trusted(hop)
        if trusted is None:
            return client  # not written by a proxy: the last hop a proxy vouched for is all we know
        client = hop
        if not trusted:
            return client
    return client


def axes_client_address(request) -> str | None:
    """``client_address`` for the login lockout, which stores it in an IP column (``inet`` on PostgreSQL):
    None when the request has no peer address (a login made in-process, e.g. ``force_login``)."""
    address = client_address(request)
    return address if _trusted(address) is not None else None
