"""Fetching remote documents that may be hostile.

Everything indiebridge downloads from a URL it was handed by someone else (a webmention
source, a target's endpoint, an author page, an actor document) goes through
``SafeFetcher``.  It guarantees that one fetch:

* only speaks ``http``/``https``;
* never connects to a loopback, private, link-local, CGNAT, multicast, reserved or
  unspecified address (IPv4, IPv6 and IPv4 embedded in IPv6), unless ``allow_private``
  (the ``allow_private_addresses`` site setting) is on;
* follows at most ``max_redirects`` redirects, by hand, re-checking every hop and
  refusing loops;
* ends within ``timeout`` seconds in total (connect, every redirect and the whole body),
  and each single connect/read is bounded by the same number;
* never holds more than ``max_bytes`` of body in memory, after content decoding, so an
  endless or compressed ("zip bomb") body is cut off early;
* never raises for an HTTP status: a 404 or 410 is returned to the caller, who decides.

How the address guard works
---------------------------
The guard runs at connect time.  ``SafeFetcher`` plugs a network backend
(``_GuardedBackend``) into the httpcore connection pool under httpx.  When the pool
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

Testing hooks: ``resolver`` replaces DNS (map fake public host names to 127.0.0.1),
``address_policy(host, ip)`` decides which resolved addresses are allowed (a test can
allow one loopback host name and still have every other hop checked), and
``network_backend`` is the httpcore backend that performs the real connects, after the
check, always to an IP address (a test can record every connection attempt).
"""

from __future__ import annotations

import codecs
import ipaddress
import socket
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import anyio
import httpcore
import httpx

from bridge import __version__
from bridge.config import SiteConfig
from bridge.errors import BlockedAddressError, FetchError

__all__ = [
    "DEFAULT_USER_AGENT",
    "AddressPolicy",
    "Fetched",
    "IPAddress",
    "Resolver",
    "SafeFetcher",
    "is_public_address",
    "system_resolver",
]

DEFAULT_USER_AGENT = f"indiebridge/{__version__} (+https://github.com/indiebridge/indiebridge)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``await resolver(host, port)`` -> the IP address strings ``host`` resolves to."""
AddressPolicy = Callable[[str, IPAddress], bool]
"""``policy(host, ip)`` -> True if connecting to ``ip`` (resolved from ``host``) is allowed."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

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


def _default_policy(host: str, ip: IPAddress) -> bool:
    return is_public_address(ip)


def _parse_ip(host: str) -> IPAddress | None:
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


class _GuardedBackend(httpcore.AsyncNetworkBackend):
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
        literal = _parse_ip(host)
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
            ips = [ip for ip in map(_parse_ip, names) if ip is not None]
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


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with the connection pool built on ``_GuardedBackend``."""

    def __init__(self, backend: _GuardedBackend, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
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


class _TooLarge(Exception):
    pass


class _BodyDecoder:
    """Content-decoding that never produces more than the room left (zip-bomb safe)."""

    def __init__(self, encoding: str, url: str) -> None:
        tokens = [t.strip() for t in encoding.lower().split(",") if t.strip()]
        tokens = [t for t in tokens if t != "identity"]
        self._url = url
        self._deflate = False
        self._z: Any = None
        if not tokens:
            return
        if tokens in (["gzip"], ["x-gzip"]):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif tokens == ["deflate"]:
            self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)
            self._deflate = True
        else:
            raise FetchError(f"{url}: unsupported content-encoding {encoding!r}")

    def feed(self, data: bytes, room: int) -> bytes:
        if self._z is None:
            if len(data) > room:
                raise _TooLarge
            return data
        try:
            out: bytes = self._z.decompress(data, room + 1)
        except zlib.error as exc:
            if not self._deflate:
                raise FetchError(f"{self._url}: broken compressed body: {exc}") from None
            # "deflate" is sometimes sent raw, without the zlib header.
            self._deflate = False
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data, room)
        self._deflate = False
        if len(out) > room:
            raise _TooLarge
        return out

    def flush(self, room: int) -> bytes:
        if self._z is None:
            return b""
        out: bytes = self._z.flush()
        if len(out) > room:
            raise _TooLarge
        return out


def _parse_charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


@dataclass(frozen=True)
class Fetched:
    """A fetched document: final URL (after redirects), status, headers and body.

    ``body`` is content-decoded (gzip/deflate undone) even though ``headers`` still show
    the ``Content-Encoding`` the server sent.
    """

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    history: list[str] = field(default_factory=list)
    """The URLs that redirected, in order; empty when there was no redirect."""

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters (``""`` when absent)."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return _parse_charset(str(self.headers.get("content-type", "")))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded with the declared charset, else UTF-8; never raises."""
        charset = self.charset
        if charset:
            try:
                codecs.lookup(charset)
                return self.body.decode(charset, errors="replace")
            except (LookupError, ValueError, TypeError):
                pass  # unknown or non-text codec: fall back to UTF-8
        return self.body.decode("utf-8-sig", errors="replace")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


class SafeFetcher:
    """An httpx client for untrusted URLs; see the module docstring for the guarantees.

    Use as ``async with SafeFetcher() as fetcher: page = await fetcher.get(url, accept=...)``
    or call ``aclose()`` when done.  One instance may serve many concurrent fetches.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        max_bytes: int = 1_048_576,
        max_redirects: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        address_policy: AddressPolicy | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._policy = address_policy or _default_policy
        self._backend = _GuardedBackend(
            network_backend or httpcore.AnyIOBackend(),
            resolver or system_resolver,
            self._policy,
            allow_private,
        )
        self._guarded = transport is None
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        self._client = httpx.AsyncClient(
            transport=transport or _GuardedTransport(self._backend, limits),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            # Stateless: no cookie from one site is ever sent anywhere.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
        )

    @classmethod
    def from_config(cls, config: SiteConfig, **options: Any) -> SafeFetcher:
        """A fetcher honouring the site's ``allow_private_addresses`` setting."""
        return cls(allow_private=config.allow_private_addresses, **options)

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- public requests ----------------------------------------------------------

    async def get(self, url: str, *, accept: str, auth: httpx.Auth | None = None) -> Fetched:
        """GET ``url`` following redirects; raise ``FetchError`` only for failures/limits."""
        return await self._fetch("GET", url, headers={"Accept": accept}, content=None, auth=auth)

    async def post_form(self, url: str, data: Mapping[str, str]) -> Fetched:
        """POST ``data`` as ``application/x-www-form-urlencoded`` (the query string stays)."""
        body = urlencode(list(data.items())).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"}
        return await self._fetch("POST", url, headers=headers, content=body, auth=None)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Fetched:
        """POST raw ``content`` with ``headers``."""
        return await self._fetch(
            "POST", url, headers=dict(headers or {}), content=content, auth=auth
        )

    # ---- the fetch loop -----------------------------------------------------------

    def _check_url(self, url: httpx.URL, text: str) -> None:
        if url.scheme not in ("http", "https"):
            raise FetchError(f"{text}: only http and https URLs can be fetched")
        if not url.host:
            raise FetchError(f"{text}: URL has no host")
        literal = _parse_ip(url.host)
        if literal is not None and not self.allow_private and not self._policy(url.host, literal):
            raise BlockedAddressError(
                f"refusing to fetch {text}: {literal} is not a public address"
            )

    async def _fetch(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        content: bytes | None,
        auth: httpx.Auth | None,
    ) -> Fetched:
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch_hops(method, url, headers, content, auth)
        except TimeoutError:
            raise FetchError(f"{url}: no complete answer within {self.timeout:g} s") from None

    async def _fetch_hops(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        auth: httpx.Auth | None,
    ) -> Fetched:
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise FetchError(f"{url}: invalid URL: {exc}") from None
        first_origin = _origin(current)
        seen = {str(current.copy_with(fragment=None))}
        history: list[str] = []
        while True:
            text = str(current)
            self._check_url(current, text)
            if not self._guarded and not self.allow_private:
                try:
                    await self._backend.check(current.host, current.port or 0, self.timeout)
                except BlockedAddressError as exc:
                    raise BlockedAddressError(f"refusing to fetch {text}: {exc}") from None
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    raise FetchError(f"{text}: {exc}") from None
            if _origin(current) != first_origin:
                auth = None  # credentials never follow a redirect to another origin
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            request = self._client.build_request(method, current, headers=headers, content=content)
            try:
                response = await self._client.send(request, auth=auth, stream=True)
            except BlockedAddressError as exc:
                raise BlockedAddressError(f"refusing to fetch {text}: {exc}") from None
            except httpx.TimeoutException as exc:
                raise FetchError(f"{text}: timed out ({exc or type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{text}: {exc or type(exc).__name__}") from None
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    try:
                        target = current.join(location.strip())
                    except httpx.InvalidURL as exc:
                        raise FetchError(f"{text}: bad redirect {location!r}: {exc}") from None
                    history.append(text)
                    key = str(target.copy_with(fragment=None))
                    if key in seen:
                        raise FetchError(f"{url}: redirect loop at {target}")
                    if len(history) > self.max_redirects:
                        raise FetchError(f"{url}: more than {self.max_redirects} redirects")
                    seen.add(key)
                    status = response.status_code
                    if (status == 303 and method != "HEAD") or (
                        status in (301, 302) and method == "POST"
                    ):
                        method, content = "GET", None
                        headers = {
                            k: v
                            for k, v in headers.items()
                            if k.lower() not in ("content-type", "content-length")
                        }
                    current = target
                    continue
                body = await self._read_body(response, text)
                return Fetched(
                    url=text,
                    status=response.status_code,
                    headers=response.headers,
                    body=body,
                    history=history,
                )
            except httpx.TimeoutException as exc:
                raise FetchError(f"{text}: timed out ({exc or type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{text}: {exc or type(exc).__name__}") from None
            finally:
                await response.aclose()

    async def _read_body(self, response: httpx.Response, url: str) -> bytes:
        limit = self.max_bytes
        too_large = FetchError(f"{url}: larger than {limit} bytes", response.status_code)
        encoding = response.headers.get("content-encoding", "")
        decoder = _BodyDecoder(encoding, url)
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += decoder.feed(chunk, limit - len(body))
            body += decoder.flush(limit - len(body))
        except _TooLarge:
            raise too_large from None
        return bytes(body)
