"""How deliveries reach the network: clients per host, per-host limits, address checks.

* ``Clients``: an ``httpx.AsyncClient`` per host with jobs in flight, plus a few idle ones.
  One client for every host made each request scan the whole connection pool (httpcore
  assigns waiting requests to connections in O(requests x connections)): at 32 connections
  the client spent more time there than sending.  A client per host holds at most
  ``per_host`` connections, so that scan stays tiny.  All clients share one TLS context.
* ``HostLimits``: one semaphore per host, forgotten when no job for that host waits or runs.
* ``AddressGuard``: unless ``allow_private``, the inbox host is resolved before each attempt
  and the attempt refused when any address is not public (``is_public_address``, the rules
  ``SafeFetcher`` applies), cached for ``DNS_CACHE_SECONDS``.  ``SafeFetcher`` checks at
  connect time instead, but its redirect following and body limits do not suit deliveries;
  the check here leaves a DNS-rebinding window between the check and the connection that
  the connect-time guard does not have.
* At most ``MAX_RESPONSE_BYTES`` of a response body are read (and responses are asked for
  uncompressed), only to quote it in ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable

import httpx

from bridge import __version__
from bridge.errors import PermanentDelivery, RetryableDelivery
from bridge.federation.addresses import Resolver, is_public_address, system_resolver
from bridge.federation.delivery.policy import one_line

ACTIVITY_JSON = "application/activity+json"
MAX_RESPONSE_BYTES = 4096
DNS_CACHE_SECONDS = 60.0
_DNS_CACHE_MAX = 4096


class NotClosing(httpx.AsyncBaseTransport):
    """A transport lent by the caller: the worker's client must not close it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class Clients:
    """An ``httpx.AsyncClient`` per host with jobs in flight, plus ``keep_idle`` idle ones."""

    def __init__(self, make: Callable[[], httpx.AsyncClient], keep_idle: int = 64) -> None:
        self._make = make
        self._keep_idle = keep_idle
        self._active: dict[str, tuple[httpx.AsyncClient, int]] = {}
        self._idle: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def use(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        entry = self._active.get(host)
        if entry is None:
            client = self._idle.pop(host, None) or self._make()
            users = 0
        else:
            client, users = entry
        self._active[host] = (client, users + 1)
        try:
            yield client
        finally:
            client, users = self._active[host]
            if users > 1:
                self._active[host] = (client, users - 1)
            else:
                del self._active[host]
                self._idle[host] = client
                while len(self._idle) > self._keep_idle:
                    _, old = self._idle.popitem(last=False)
                    task = asyncio.get_running_loop().create_task(old.aclose())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        clients = [c for c, _ in self._active.values()] + list(self._idle.values())
        self._active.clear()
        self._idle.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class SharedClient(Clients):
    """The same client for every host (a transport lent by the caller)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__(lambda: client)
        self._client = client

    @contextlib.asynccontextmanager
    async def use(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        yield self._client

    async def aclose(self) -> None:
        await self._client.aclose()


def make_clients(
    *,
    user_agent: str,
    timeout: float,
    concurrency: int,
    per_host: int,
    transport: httpx.AsyncBaseTransport | None,
) -> Clients:
    """Clients per host on the real network, or one shared client over a lent transport."""
    headers = {"User-Agent": user_agent, "Accept": ACTIVITY_JSON, "Accept-Encoding": "identity"}
    if transport is not None:
        limits = httpx.Limits(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=30.0,
        )
        return SharedClient(
            httpx.AsyncClient(
                transport=NotClosing(transport),
                limits=limits,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                trust_env=False,
                headers=headers,
            )
        )
    tls: list[ssl.SSLContext] = []  # made on first use: loading CAs takes a while
    size = min(per_host, concurrency)
    limits = httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0
    )

    def make() -> httpx.AsyncClient:
        if not tls:
            tls.append(httpx.create_ssl_context(trust_env=False))
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(
                verify=tls[0], limits=limits, trust_env=False, retries=0
            ),
            limits=limits,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers=headers,
        )

    return Clients(make)


class HostLimits:
    """One semaphore per host, forgotten when no job for that host is waiting or running."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._entries: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        sem, users = self._entries.get(host) or (asyncio.Semaphore(self._per_host), 0)
        self._entries[host] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._entries[host]
            if users <= 1:
                del self._entries[host]
            else:
                self._entries[host] = (sem, users - 1)

    def __len__(self) -> int:
        return len(self._entries)


class AddressGuard:
    """Refuse an inbox on a private address unless allowed (resolved, cached briefly)."""

    def __init__(self, allow_private: bool, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver or system_resolver
        self._ok_until: dict[str, float] = {}

    async def check(self, inbox: str) -> None:
        """Raise ``PermanentDelivery`` (bad URL, private address) or ``RetryableDelivery``."""
        url = httpx.URL(inbox)
        if url.scheme not in ("http", "https") or not url.host:
            raise PermanentDelivery(f"invalid inbox URL {inbox!r}: only http(s) is delivered to")
        if self.allow_private:
            return
        host = url.host
        moment = time.monotonic()
        if self._ok_until.get(host, 0.0) > moment:
            return
        ips = _ip_addresses([host])
        if not ips:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                ips = _ip_addresses(await self._resolver(host, port))
            except OSError as exc:
                raise RetryableDelivery(one_line(f"cannot resolve {host}: {exc}")) from None
            if not ips:
                raise RetryableDelivery(f"cannot resolve {host}: no addresses")
        for ip in ips:
            if not is_public_address(ip):
                raise PermanentDelivery(f"refused: {host} resolves to non-public address {ip}")
        if len(self._ok_until) >= _DNS_CACHE_MAX:
            self._ok_until.clear()
        self._ok_until[host] = moment + DNS_CACHE_SECONDS


def _ip_addresses(texts: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for text in texts:
        with contextlib.suppress(ValueError):
            out.append(ipaddress.ip_address(text.strip("[]")))
    return out


async def read_some(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """At most ``limit`` raw bytes of the body (the rest is not read)."""
    if response.is_stream_consumed:  # a body built in memory (test transports) is read already
        with contextlib.suppress(httpx.ResponseNotRead):
            return response.content[:limit]
        return b""
    out = bytearray()
    async for chunk in response.aiter_raw():
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


def default_user_agent(base_url: str | None, key_id: str) -> str:
    """``indiebridge/<version> (+<base url>)``, the base URL defaulting to the key's origin."""
    if base_url is None:
        url = httpx.URL(key_id)
        base_url = f"{url.scheme}://{url.netloc.decode('ascii')}/" if url.host else None
    suffix = f" (+{base_url})" if base_url else ""
    return f"indiebridge/{__version__}{suffix}"
