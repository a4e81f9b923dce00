"""SSRF guard: which URLs and network addresses the page fetcher may reach.

The model chooses the URLs we fetch, so a page (or a redirect, or a DNS answer) must not be able
to steer us at the machine we run on, the private network around it or a cloud metadata service.
The guard works in two places:

* :meth:`SSRFGuard.check_url` vets a URL before every request (scheme, host, resolved addresses),
  which gives clear messages and covers every redirect hop;
* :class:`GuardedNetworkBackend` is the httpcore network backend the fetcher connects through: it
  resolves the host itself, vets every address and connects to the vetted IP, so a DNS answer that
  changes between the check and the connect (DNS rebinding) cannot slip through. TLS SNI and the
  Host header still carry the original host name, because httpcore takes them from the URL.

The decisions (:func:`forbidden_reason`, :func:`parse_ip_host`, :class:`AllowList`) are pure
functions, testable without opening a connection; name resolution is injectable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from fathom.tls import ssl_context as shared_ssl_context
from fathom.tools.base import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async resolver(host, port) -> [ip, ...]``: how host names become addresses."""

DEFAULT_PORTS = {"http": 80, "https": 443}

# Names that reach metadata services or the local machine without DNS ever saying so.
_FORBIDDEN_NAMES = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_FORBIDDEN_SUFFIXES = (".localhost", ".internal", ".local")
# Cloud metadata and host-agent endpoints. Most sit in ranges refused anyway; 168.63.129.16
# (Azure wire server) is a public address and must be named.
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4ISH = re.compile(r"[0-9a-fx.]+")


class BlockedURLError(ToolError):
    """The URL, or an address it resolves to, is one the fetcher refuses to contact."""


class UnresolvableHostError(ToolError):
    """The host name does not resolve to any address."""


# ---- pure decisions -------------------------------------------------------------------------


def parse_ip_host(host: str) -> IPAddress | None:
    """``host`` as an IP address, in any spelling a C resolver accepts; ``None`` for a name.

    ``0x7f000001``, ``2130706433``, ``0177.0.0.1`` and ``127.1`` all mean 127.0.0.1 to
    ``getaddrinfo``, so they must mean it here too. Brackets and IPv6 zone ids are removed.
    """
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h.split("%", 1)[0])
        except ValueError:
            return None
    h = h.rstrip(".")
    if not h or not _IPV4ISH.fullmatch(h):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(h))
    except OSError:
        return None


def forbidden_reason(ip: IPAddress | str) -> str | None:
    """Why ``ip`` must not be contacted (e.g. ``"a loopback address"``), or ``None`` if it may."""
    if isinstance(ip, str):
        parsed = parse_ip_host(ip)
        if parsed is None:
            return "not an IP address"
        ip = parsed
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        # Addresses that tunnel an IPv4 address are judged by the address they carry.
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and forbidden_reason(embedded):
            return f"an IPv6 address that embeds {embedded}"
    if ip in _METADATA_IPS:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def is_forbidden_address(ip: IPAddress | str) -> bool:
    """True when the fetcher must not connect to ``ip`` (unless its host is allow-listed)."""
    return forbidden_reason(ip) is not None


def normalize_host(host: str) -> str:
    """Lower-case, brackets and trailing dot removed; IP literals in canonical form."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.rstrip(".")
    ip = parse_ip_host(h)
    return str(ip) if ip is not None else h


def forbidden_name_reason(host: str) -> str | None:
    """Why the host *name* alone is refused (``localhost``, metadata names), else ``None``."""
    name = normalize_host(host)
    if name in _FORBIDDEN_NAMES or name.endswith(_FORBIDDEN_SUFFIXES):
        return "an internal host name"
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts that may be fetched even though they are internal: ``host`` or ``host:port`` entries.

    ``host`` opens every port of that host; ``host:port`` opens that one port. IPv6 entries are
    written bracketed with a port (``[::1]:8080``) or bare (``::1``).
    """

    entries: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def parse(cls, items: Iterable[str]) -> AllowList:
        entries: set[tuple[str, int | None]] = set()
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            host, port = item, None
            if item.startswith("["):
                end = item.find("]")
                if end < 0:
                    raise ValueError(f"allow_hosts entry {raw!r} has an unclosed '['")
                host, rest = item[1:end], item[end + 1 :]
                if rest:
                    port = _parse_port(rest.removeprefix(":"), raw)
            elif item.count(":") == 1:
                host, port_text = item.split(":")
                port = _parse_port(port_text, raw)
            entries.add((normalize_host(host), port))
        return cls(frozenset(entries))

    def allows(self, host: str, port: int) -> bool:
        name = normalize_host(host)
        return (name, None) in self.entries or (name, port) in self.entries


def _parse_port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"allow_hosts entry {raw!r} has an invalid port")
    return int(text)


# ---- the guard ------------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver (``getaddrinfo``), addresses in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnresolvableHostError(f"could not resolve host {host!r} ({exc.strerror})") from None
    seen: dict[str, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class SSRFGuard:
    """Vets URLs and (host, port) pairs against the address policy and the allow-list."""

    def __init__(self, allow_hosts: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self.allow = AllowList.parse(allow_hosts)
        self._resolve = resolver or system_resolver

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host:port``; raises :class:`BlockedURLError` if any is refused.

        One refused address refuses the host: a mixed answer is how rebinding attacks look.
        """
        allowed = self.allow.allows(host, port)
        if not allowed and (reason := forbidden_name_reason(host)):
            raise BlockedURLError(f"refused: {host} is {reason}")
        literal = parse_ip_host(host)
        if literal is not None:
            addresses = [literal]
        else:
            raw = await self._resolve(normalize_host(host), port)
            addresses = [ip for a in raw if (ip := parse_ip_host(a)) is not None]
            if not addresses:
                raise UnresolvableHostError(f"could not resolve host {host!r}")
        if not allowed:
            for ip in addresses:
                if reason := forbidden_reason(ip):
                    shown = host if literal is not None else f"{host} resolves to {ip}, which"
                    raise BlockedURLError(f"refused: {shown} is {reason}")
        return addresses

    async def check_url(self, url: str | httpx.URL) -> list[IPAddress]:
        """Vet a URL: http(s) only, a host, and only allowed addresses. Returns the vetted addresses."""
        _, host, port = split_url(str(url))
        return await self.resolve(host, port)


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; raises :class:`BlockedURLError` for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise BlockedURLError("invalid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{scheme}:" if scheme else "a URL without a scheme"
        raise BlockedURLError(f"refused: {shown} is not allowed, only http:// and https://")
    if not parts.hostname:
        raise BlockedURLError("invalid URL: it has no host")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


async def check_url(
    url: str, allow_hosts: Iterable[str] = (), *, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Vet ``url`` once (see :meth:`SSRFGuard.check_url`); raises :class:`BlockedURLError` if refused."""
    return await SSRFGuard(allow_hosts, resolver=resolver).check_url(url)


# ---- enforcement at connect time ------------------------------------------------------------


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that connects only to addresses the guard has vetted, by IP."""

    def __init__(self, guard: SSRFGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        error: Exception | None = None
        for ip in addresses:  # in resolver order, like getaddrinfo users do
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedURLError("refused: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose every connection goes through :class:`GuardedNetworkBackend`.

    It never uses proxies from the environment: through a proxy, the address we vet would not be
    the address the request reaches.
    """

    def __init__(
        self,
        guard: SSRFGuard,
        *,
        limits: httpx.Limits = httpx.Limits(max_connections=64, max_keepalive_connections=16),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        ssl_context = ssl_context or shared_ssl_context()  # one per process (see fathom.tls)
        super().__init__(trust_env=False, limits=limits, verify=ssl_context)
        # httpx has no public hook for the network backend, so replace the pool it just built
        # with one of the same settings that connects through the guard.
        if not hasattr(self, "_pool"):  # pragma: no cover - a future httpx would need a new hook
            raise RuntimeError("this httpx version does not expose AsyncHTTPTransport._pool")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard),
        )
