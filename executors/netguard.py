"""Which executor addresses the scheduler may connect to: the guard against SSRF through executor URLs.

Anyone who can register an executor chooses the URLs the scheduler will call. Without a guard that makes
the scheduler a proxy into its own network, and the classic target is the cloud metadata service
(169.254.169.254, fd00:ec2::254), which hands out credentials (XXL-Job CVE-2022-43183, CVE-2024-24113).

Rules: http(s) only. Always refused, whatever the allowlist says: unspecified (0.0.0.0/8, ::), broadcast,
multicast, link-local (169.254.0.0/16 and fe80::/10, with the metadata services in them) and
fd00:ec2::254, also when written inside an IPv6 address that carries an IPv4 one (IPv4-mapped ::ffff:a.b.c.d,
IPv4-compatible ::a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96 and
64:ff9b:1::/48, Teredo 2001::/32, ISATAP). Without SCHEDULER_EXECUTOR_ALLOWED_NETWORKS only public
addresses are allowed: loopback, private and other special-purpose ranges (and IPv6 forms that reach them)
are refused. With it, every address must be in one of its networks unless the host name itself is listed.
A host name is resolved and EVERY address it resolves to is checked, then the caller connects to the
checked address (``Target.address``), so a DNS answer that changes between check and connect (DNS
rebinding) cannot redirect the request.
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

_LINK_LOCAL = "a link-local or cloud metadata address"
_NOWHERE = "an unspecified, broadcast or multicast address"
ALWAYS_REFUSED: dict[IPNetwork, str] = {ipaddress.ip_network(network): kind for network, kind in (
    ("169.254.0.0/16", _LINK_LOCAL),  # IPv4 link-local; 169.254.169.254 is the metadata service
    ("fe80::/10", _LINK_LOCAL),  # IPv6 link-local
    ("fd00:ec2::254/128", _LINK_LOCAL),  # AWS metadata service over IPv6
    ("0.0.0.0/8", _NOWHERE),  # "this network": 0.0.0.0 reaches the host itself
    ("::/128", _NOWHERE),
    ("255.255.255.255/32", _NOWHERE),
    ("224.0.0.0/4", _NOWHERE),
    ("ff00::/8", _NOWHERE),
)}
# IPv6 ranges whose addresses carry an IPv4 address the packets end up at (RFC 4291, 6052, 6145, 3056, 4380,
# 5214): the guard judges that IPv4 address too.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # the IPv4 address sits where its prefix length puts it
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


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


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and may reach through a translator or tunnel)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _IPV4_TRANSLATED or address in _NAT64:
        found.append(low32)  # (:: and ::1 are IPv6's own unspecified and loopback addresses)
    if address in _NAT64_LOCAL:
        packed = address.packed  # RFC 6052 §2.2: the IPv4 bytes skip bits 64-71, for each prefix length
        found += [ipaddress.IPv4Address(raw) for raw in (packed[6:8] + packed[9:11], packed[7:8] + packed[9:12],
                                                         packed[9:13], packed[12:16])]
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found += list(address.teredo)
    if (int(address) >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        found.append(low32)
    return found


def _always_refused(address: IPAddress) -> str | None:
    """What kind of never-allowed address ``address`` is, or None."""
    return next((kind for network, kind in ALWAYS_REFUSED.items()
                 if address.version == network.version and address in network), None)


def refusal(host: str, raw_address: str) -> str | None:
    """Why ``raw_address`` (one address of ``host``) must not be connected to, or None."""
    try:
        address = ipaddress.ip_address(raw_address.split("%", 1)[0])
    except ValueError:
        return f"{raw_address!r} is not an IP address"
    embedded = embedded_ipv4(address)
    for candidate in (address, *embedded):
        kind = _always_refused(candidate)
        if kind is not None:
            return f"{raw_address} is {kind}" + (f" (it carries {candidate})" if candidate != address else "")
    allowed = allowlist()
    if allowed is not None:
        if allowed.allows_host(host) or allowed.allows_address(address) or (
                embedded and all(allowed.allows_address(candidate) for candidate in embedded)):
            return None
        return f"{raw_address} is outside SCHEDULER_EXECUTOR_ALLOWED_NETWORKS"
    for candidate in (address, *embedded):
        if not candidate.is_global:
            return (f"{raw_address} is a loopback, private or reserved address"
                    + (f" (it carries {candidate})" if candidate != address else "")
                    + ": admit it with SCHEDULER_EXECUTOR_ALLOWED_NETWORKS")
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
