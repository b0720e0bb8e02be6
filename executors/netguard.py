"""Which executor addresses the scheduler may connect to: the guard against SSRF through executor URLs.

Anyone who can register an executor chooses the URLs the scheduler will call. Without a guard that makes
the scheduler a proxy into its own network, and the classic target is the cloud metadata service
(169.254.169.254, fd00:ec2::254), which hands out credentials (XXL-Job CVE-2022-43183, CVE-2024-24113).

Rules: http(s) only; link-local addresses (169.254.0.0/16, fe80::/10, with the metadata services in them)
and fd00:ec2::254 are always refused, also written as IPv4-mapped or NAT64 IPv6; when
SCHEDULER_EXECUTOR_ALLOWED_NETWORKS is set, every address must be in one of its networks unless the host
name itself is listed. A host name is resolved and EVERY address it resolves to is checked, then the
caller connects to the checked address (``Target.address``), so a DNS answer that changes between check
and connect (DNS rebinding) cannot redirect the request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_REFUSED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local; 169.254.169.254 is the metadata service
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata service over IPv6
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway turns these into the IPv4 in the low bits


class RefusedURL(ValueError):
    """The scheduler must not call this URL; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableHost(RefusedURL):
    """The host name does not resolve (now): nothing can be checked, nothing is connected to."""


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``address``, present ``host`` (Host header, TLS server name)."""

    scheme: str
    host: str
    port: int
    address: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self, path_and_query: str) -> str:
        """The URL that reaches ``address`` directly, for the request target ``path_and_query``."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}{path_and_query}"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to. The seam tests replace (no real DNS in tests)."""
    with contextlib.suppress(ValueError):  # an address literal is itself: no resolver call (hot dispatch path)
        return [str(ipaddress.ip_address(host))]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"host {host!r} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[IPNetwork, ...]
    hosts: tuple[str, ...]  # exact names, or ".suffix" for a domain and everything under it

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == name or (name.startswith(".") and host.endswith(name)) for name in self.hosts)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network for network in self.networks)


@lru_cache(maxsize=8)
def parse_allowlist(entries: tuple[str, ...]) -> Allowlist:
    networks, hosts = [], []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if "/" in entry or ":" in entry:
                raise ImproperlyConfigured(f"SCHEDULER_EXECUTOR_ALLOWED_NETWORKS: {entry!r} is not a network") from None
            name = entry.lower().rstrip(".")
            hosts.append("." + name[2:] if name.startswith("*.") else name)
    return Allowlist(tuple(networks), tuple(hosts))


def allowlist() -> Allowlist | None:
    """SCHEDULER_EXECUTOR_ALLOWED_NETWORKS, read at call time (so override_settings works); None if unset."""
    entries = tuple(getattr(settings, "SCHEDULER_EXECUTOR_ALLOWED_NETWORKS", ()) or ())
    return parse_allowlist(entries) if entries else None


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one really reaches, for IPv4-mapped and NAT64 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(host: str, raw_address: str) -> str | None:
    """Why ``raw_address`` (one address of ``host``) must not be connected to, or None."""
    try:
        address = ipaddress.ip_address(raw_address.split("%", 1)[0])
    except ValueError:
        return f"{raw_address!r} is not an IP address"
    effective = _effective(address)
    for candidate in {address, effective}:
        if any(candidate.version == net.version and candidate in net for net in ALWAYS_REFUSED):
            return f"{raw_address} is a link-local or cloud metadata address"
    allowed = allowlist()
    if allowed is not None and not allowed.allows_host(host) and not (
        allowed.allows_address(address) or allowed.allows_address(effective)
    ):
        return f"{raw_address} is outside SCHEDULER_EXECUTOR_ALLOWED_NETWORKS"
    return None


def check_url(url: str) -> Target:
    """Resolves and checks ``url``; returns where to connect. Raises RefusedURL (UnresolvableHost)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedURL(f"SSRF guard: not a valid URL: {url!r}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise RefusedURL(f"SSRF guard: not an absolute http(s) URL: {url!r}")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise UnresolvableHost(f"host {host!r} resolves to no address")
    for address in addresses:
        reason = refusal(host, address)
        if reason is not None:
            raise RefusedURL(f"SSRF guard: {host}: {reason}")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0])
