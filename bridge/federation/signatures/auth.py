"""Signing every request an httpx client sends, with double-knocking between the schemes.

Facts relied on (tests in tests/federation/test_signatures.py):

* Every request the auth flow yields gets a fresh ``Date``/``created`` and a fresh signature,
  so a retried or re-sent request is never rejected as stale.
* Double-knocking (``rfc9421-first``): send RFC 9421; on 400 or 401 re-send the same request
  signed with cavage.  The outcome is remembered per origin (scheme, host, port) in a
  ``SchemeMemory`` so later requests go straight to the scheme that worked.  A cavage retry
  that is refused as well is not remembered (the refusal was not about the scheme).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Literal

import httpx

from bridge.federation.signatures import cavage, rfc9421
from bridge.federation.signatures.common import PrivateKey, Scheme, utcnow

SchemeSetting = Literal["cavage", "rfc9421", "rfc9421-first"]


def origin_of(url: httpx.URL | str) -> str:
    """``scheme://host:port`` of a URL, the key under which a ``SchemeMemory`` remembers."""
    url = httpx.URL(url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return f"{url.scheme}://{url.host}:{port}"


def _strip_signature_headers(request: httpx.Request) -> None:
    for name in ("Signature", "Signature-Input", "Digest", "Content-Digest"):
        if name in request.headers:
            del request.headers[name]
    auth = request.headers.get("Authorization", "")
    if auth[:10].lower() == "signature ":
        del request.headers["Authorization"]


def sign_request(
    request: httpx.Request, private_key: PrivateKey, key_id: str, scheme: Scheme, now: dt.datetime
) -> None:
    """Sign ``request`` in place (its body must have been read).

    Earlier signature headers (``Signature``, ``Signature-Input``, ``Digest``,
    ``Content-Digest``, ``Authorization: Signature``) are replaced, so a request can be signed
    again.  ``Content-Type`` and other headers are left as they are.
    """
    _strip_signature_headers(request)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    if scheme == "cavage":
        cavage.sign(request, private_key, key_id, now)
    elif scheme == "rfc9421":
        rfc9421.sign(request, private_key, key_id, now)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")


class SchemeMemory:
    """Which signature scheme each origin accepted; shared between threads and clients.

    At most ``max_entries`` origins are kept (the least recently set are forgotten).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Scheme] = OrderedDict()
        self._max = max_entries

    def get(self, origin: str) -> Scheme | None:
        with self._lock:
            return self._entries.get(origin)

    def set(self, origin: str, scheme: Scheme) -> None:
        with self._lock:
            self._entries[origin] = scheme
            self._entries.move_to_end(origin)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class HTTPSignatureAuth(httpx.Auth):
    """Sign every request an ``httpx.Client``/``AsyncClient`` sends.

    ``scheme`` is ``"cavage"``, ``"rfc9421"`` or ``"rfc9421-first"`` (double-knocking, see the
    module docstring).  ``clock`` returns the current time (tests pass a fake one).
    """

    requires_request_body = True

    def __init__(
        self,
        private_key: PrivateKey,
        key_id: str,
        scheme: SchemeSetting = "cavage",
        memory: SchemeMemory | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if scheme not in ("cavage", "rfc9421", "rfc9421-first"):
            raise ValueError(f"unknown signature scheme {scheme!r}")
        cavage.quoted(key_id, "key id")
        self.private_key = private_key
        self.key_id = key_id
        self.scheme: SchemeSetting = scheme
        self.memory = memory if memory is not None else SchemeMemory()
        self.clock = clock or utcnow

    def _sign(self, request: httpx.Request, scheme: Scheme) -> httpx.Request:
        sign_request(request, self.private_key, self.key_id, scheme, self.clock())
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.scheme != "rfc9421-first":
            yield self._sign(request, self.scheme)
            return
        origin = origin_of(request.url)
        if self.memory.get(origin) == "cavage":
            yield self._sign(request, "cavage")
            return
        response = yield self._sign(request, "rfc9421")
        if response.status_code not in (400, 401):
            self.memory.set(origin, "rfc9421")
            return
        response = yield self._sign(request, "cavage")
        if response.status_code not in (400, 401):
            self.memory.set(origin, "cavage")
