"""How deliveries reach the network: the client, per-host limits, address checks.

* ``make_client``: one ``httpx.AsyncClient`` over ``Http1Transport`` (``http1.py``: per-origin
  keep-alive over asyncio streams, no httpcore or anyio; its address guard runs at connect
  time on the resolved addresses, so DNS rebinding cannot slip a private address in).
  Before it, the worker had an httpx client per host (httpcore's pool scans its
  connections for each request, O(requests x connections)); the lean transport halved the
  time per request again (benchmarks/README.md has the figures).
* ``HostLimits``: one semaphore per host, forgotten when no job for that host waits or runs.
* ``AddressGuard``: only for a transport lent by the caller (tests), which cannot check at
  connect time: unless ``allow_private``, the inbox host is resolved before each attempt
  and the attempt refused when any address is not public (``is_public_address``, the rules
  ``SafeFetcher`` applies), cached for ``DNS_CACHE_SECONDS``.
* At most ``MAX_RESPONSE_BYTES`` of a response body are read (and responses are asked for
  uncompressed), only to quote it in ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Iterable

import httpx

from bridge import __version__
from bridge.errors import PermanentDelivery, RetryableDelivery
from bridge.federation.addresses import Resolver, is_public_address, system_resolver
from bridge.federation.delivery.http1 import Http1Transport
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


def make_client(
    *,
    user_agent: str,
    timeout: float,
    per_host: int,
    allow_private: bool,
    resolver: Resolver | None,
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncClient:
    """The worker's client: over ``Http1Transport`` on the real network, else over the
    transport the caller lent (tests), which the client will not close."""
    headers = {"User-Agent": user_agent, "Accept": ACTIVITY_JSON, "Accept-Encoding": "identity"}
    inner: httpx.AsyncBaseTransport
    if transport is None:
        inner = Http1Transport(
            per_host=per_host,
            max_body=MAX_RESPONSE_BYTES,
            allow_private=allow_private,
            resolver=resolver,
        )
    else:
        inner = NotClosing(transport)
    return httpx.AsyncClient(
        transport=inner,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )


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
