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

The address guard (``bridge.federation.addresses``) runs at connect time: the connection
pool under httpx resolves each host once, refuses it if any address is not public and
connects to the checked address itself, so DNS rebinding cannot slip a private address in.
Environment proxies are ignored (``trust_env=False``).  Literal IP URLs are refused before
any connection is attempted, and a blocked hop raises ``BlockedAddressError`` naming the URL.

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

from collections.abc import Mapping
from dataclasses import dataclass
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
from bridge.federation.addresses import (
    AddressPolicy,
    GuardedBackend,
    GuardedTransport,
    IPAddress,
    Resolver,
    default_policy,
    is_public_address,
    parse_ip,
    system_resolver,
)
from bridge.federation.fetched import BodyDecoder, Fetched, TooLarge

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

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


@dataclass(frozen=True)
class _Request:
    """What is sent at each hop; redirects may turn it into a GET or drop credentials."""

    method: str
    headers: dict[str, str]
    content: bytes | None
    auth: httpx.Auth | None

    def without_credentials(self) -> _Request:
        """Credentials never follow a redirect to another origin."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        return _Request(self.method, headers, self.content, None)

    def after_redirect(self, status: int) -> _Request:
        """303 (except HEAD), and 301/302 after a POST, continue as a GET without a body."""
        if not (
            (status == 303 and self.method != "HEAD")
            or (status in (301, 302) and self.method == "POST")
        ):
            return self
        dropped = ("content-type", "content-length")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        return _Request("GET", headers, None, self.auth)


class _Hops:
    """The redirect chain of one fetch: its history, loop and length checks."""

    def __init__(self, url: str, first: httpx.URL, max_redirects: int) -> None:
        self.url = url
        self.first_origin = _origin(first)
        self.max_redirects = max_redirects
        self.history: list[str] = []
        self._seen = {str(first.copy_with(fragment=None))}

    def redirect(self, current: httpx.URL, response: httpx.Response) -> httpx.URL | None:
        """The next URL when ``response`` redirects, else None; raise on loops and limits."""
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return None
        try:
            target = current.join(location.strip())
        except httpx.InvalidURL as exc:
            raise FetchError(f"{current}: bad redirect {location!r}: {exc}") from None
        self.history.append(str(current))
        key = str(target.copy_with(fragment=None))
        if key in self._seen:
            raise FetchError(f"{self.url}: redirect loop at {target}")
        if len(self.history) > self.max_redirects:
            raise FetchError(f"{self.url}: more than {self.max_redirects} redirects")
        self._seen.add(key)
        return target


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
        self._policy = address_policy or default_policy
        self._backend = GuardedBackend(
            network_backend or httpcore.AnyIOBackend(),
            resolver or system_resolver,
            self._policy,
            allow_private,
        )
        self._guarded = transport is None
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        self._client = httpx.AsyncClient(
            transport=transport or GuardedTransport(self._backend, limits),
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

    async def get(
        self,
        url: str,
        *,
        accept: str,
        auth: httpx.Auth | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        """GET ``url`` following redirects; raise ``FetchError`` only for failures/limits.

        ``max_bytes`` lowers the body limit for this one fetch (never raises it).
        """
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        return await self._fetch(
            "GET", url, headers={"Accept": accept}, content=None, auth=auth, limit=limit
        )

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
        literal = parse_ip(url.host)
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
        limit: int | None = None,
    ) -> Fetched:
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch_hops(
                    method, url, headers, content, auth, limit or self.max_bytes
                )
        except TimeoutError:
            raise FetchError(f"{url}: no complete answer within {self.timeout:g} s") from None

    async def _fetch_hops(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        auth: httpx.Auth | None,
        limit: int,
    ) -> Fetched:
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise FetchError(f"{url}: invalid URL: {exc}") from None
        hops = _Hops(url, current, self.max_redirects)
        request = _Request(method, headers, content, auth)
        while True:
            await self._check_hop(current)
            if _origin(current) != hops.first_origin:
                request = request.without_credentials()
            response = await self._send(request, current)
            try:
                target = hops.redirect(current, response)
                if target is None:
                    return Fetched(
                        url=str(current),
                        status=response.status_code,
                        headers=response.headers,
                        body=await self._read_body(response, str(current), limit),
                        history=hops.history,
                    )
            except httpx.TimeoutException as exc:
                raise FetchError(f"{current}: timed out ({exc or type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{current}: {exc or type(exc).__name__}") from None
            finally:
                await response.aclose()
            request = request.after_redirect(response.status_code)
            current = target

    async def _check_hop(self, url: httpx.URL) -> None:
        """Scheme, host and literal address; with a lent transport, the resolved addresses."""
        text = str(url)
        self._check_url(url, text)
        if self._guarded or self.allow_private:
            return  # the connect-time guard checks (or nothing is to be checked)
        try:
            await self._backend.check(url.host, url.port or 0, self.timeout)
        except BlockedAddressError as exc:
            raise BlockedAddressError(f"refusing to fetch {text}: {exc}") from None
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            raise FetchError(f"{text}: {exc}") from None

    async def _send(self, request: _Request, url: httpx.URL) -> httpx.Response:
        """Send one hop (streaming); every failure becomes a one-line ``FetchError``."""
        text = str(url)
        built = self._client.build_request(
            request.method, url, headers=request.headers, content=request.content
        )
        try:
            return await self._client.send(built, auth=request.auth, stream=True)
        except BlockedAddressError as exc:
            raise BlockedAddressError(f"refusing to fetch {text}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise FetchError(f"{text}: timed out ({exc or type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{text}: {exc or type(exc).__name__}") from None

    async def _read_body(self, response: httpx.Response, url: str, limit: int) -> bytes:
        too_large = FetchError(f"{url}: larger than {limit} bytes", response.status_code)
        encoding = response.headers.get("content-encoding", "")
        decoder = BodyDecoder(encoding, url)
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += decoder.feed(chunk, limit - len(body))
            body += decoder.flush(limit - len(body))
        except TooLarge:
            raise too_large from None
        return bytes(body)
