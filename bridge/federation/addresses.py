"""Which addresses may be connected to, enforced when the connection is opened.

How the address guard works
---------------------------
The guard runs at connect time.  ``SafeFetcher`` plugs a network backend
(``GuardedBackend``) into the httpcore connection pool under httpx.  When the pool
opens a connection it calls ``connect_tcp(host, port)``; the backend resolves ``host``
once, refuses the connection if *any* resolved address is not public, and then connects
to the checked IP address itself.  There is no second DNS lookup between check and
connect, so DNS rebinding cannot slip a private address in.  TLS still uses the host
name for SNI and certificate checks (httpcore passes it to ``start_tls`` separately).
Environment proxies are ignored (``trust_env=False``): a proxy would make the connect
target the proxy, not the checked address.

Literal IP URLs are refused before any connection is attempted, and a blocked hop
raises ``BlockedAddressError`` naming the URL.

When a caller injects its own ``transport`` (tests with ``httpx.MockTransport``), the
connect-time guard cannot apply; the fetcher then resolves and checks each hop's host
before sending.  That leaves a DNS-rebinding window between the check and the
transport's own lookup — acceptable for test transports only.

Facts relied on (tests in tests/federation/test_fetch.py and
tests/security/test_fetch_hostility.py):
IPv4 and IPv6 loopback, private, link-local, CGNAT (100.64.0.0/10), multicast, reserved and
unspecified addresses are refused, and so is any IPv4 address embedded in IPv6 (mapped, 6to4,
NAT64 ``64:ff9b::/96``) that would be refused on its own.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from contextlib import nullcontext

import anyio
import httpcore
import httpx

from bridge.errors import BlockedAddressError

__all__ = [
    "AddressPolicy",
    "GuardedBackend",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "default_policy",
    "is_public_address",
    "parse_ip",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``await resolver(host, port)`` -> the IP address strings ``host`` resolves to."""
AddressPolicy = Callable[[str, IPAddress], bool]
"""``policy(host, ip)`` -> True if connecting to ``ip`` (resolved from ``host``) is allowed."""

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True if ``ip`` is a globally routable unicast address that is safe to fetch from."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global
    )


def default_policy(host: str, ip: IPAddress) -> bool:
    return is_public_address(ip)


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (``getaddrinfo``), in its order, deduplicated."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    return out


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every address, then connect to a checked address (never the name)."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend,
        resolver: Resolver,
        policy: AddressPolicy,
        allow_private: bool,
    ) -> None:
        self._inner = inner
        self._resolver = resolver
        self._policy = policy
        self._allow_private = allow_private

    async def check(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The addresses of ``host`` that may be connected to; raise if any is blocked."""
        literal = parse_ip(host)
        if literal is not None:
            ips = [literal]
        else:
            try:
                with anyio.fail_after(timeout) if timeout else nullcontext():
                    names = await self._resolver(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
            ips = [ip for ip in map(parse_ip, names) if ip is not None]
            if not ips:
                raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        if not self._allow_private:
            for ip in ips:
                if not self._policy(host, ip):
                    raise BlockedAddressError(f"{host} resolves to non-public address {ip}")
        return [str(ip) for ip in ips]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.check(host, port, timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError(f"unix socket {path} is not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one client TLS context of this process: certificates verified against the CA
    bundle, parsed once (about 2 MB) for every fetcher and the delivery transport.  Nothing
    changes it but the ALPN list, to HTTP/1.1 alone for every client.  ``serve`` makes it
    before forking (``preload.warm``), so its processes share the parsed bundle."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with the connection pool built on ``GuardedBackend``."""

    def __init__(self, backend: GuardedBackend, limits: httpx.Limits) -> None:
        ssl_context = tls_context()
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx 0.28 offers no public way to choose the network backend, so the pool it
        # built is swapped for an identical one that uses ours.  Fail loudly if the
        # attribute ever changes rather than fetch without the guard.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("unsupported httpx version: cannot install the address guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
