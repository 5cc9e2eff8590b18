"""HTTP limits for the daemon's own server: what one client may hold open or send.

The daemon is reachable by anyone, and runs on small machines nobody watches, so a client
must not be able to park requests, drip a body or send megabytes of headers.  The limits,
each with a test in tests/security/test_http_limits.py:

* ``MAX_HEADERS`` (100) header fields and ``MAX_HEADER_BYTES`` (16 KiB) of header names and
  values per request: more is 431.  ``uvicorn_options`` also caps what uvicorn's HTTP/1.1
  parser buffers for an incomplete request head at the same 16 KiB, so an 8 MiB header
  block is cut off while it is still being read.
* ``BODY_DEADLINE`` (15 s): the whole body must have arrived within that time of the
  request reaching the app; a slower body is answered 408 and the app sees a disconnect.
* ``MAX_CONCURRENT`` (64) requests in the app at once; more are answered 503 with
  ``Retry-After`` at once instead of queuing.
* ``KEEP_ALIVE_TIMEOUT`` (5 s): an idle keep-alive connection is closed (uvicorn).
* A slow *header* drip cannot be stopped from inside an ASGI app (the server parses the
  head before calling it); uvicorn has no header timeout, so the reverse proxy's (nginx
  ``client_header_timeout``, Caddy ``read_header``) is the one that holds.

Wiring (in the daemon's composition): wrap the Starlette app in ``HTTPLimits`` and pass
``uvicorn_options()`` to ``uvicorn.Config``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16_384
BODY_DEADLINE = 15.0
MAX_CONCURRENT = 64
KEEP_ALIVE_TIMEOUT = 5


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that match the limits above."""
    return {
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        # uvicorn's own cap counts connections as well as requests: kept above ours, so
        # the app's 503 (with Retry-After) is what clients normally see.
        "limit_concurrency": MAX_CONCURRENT * 2,
        # No route speaks WebSocket (live reload is an event stream): uvicorn would
        # otherwise import the websockets package in every worker (about 1 MB each) and
        # answer upgrade requests with a handshake the app then refuses.
        "ws": "none",
    }


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HTTPLimits:
    """ASGI middleware enforcing the header, body-deadline and concurrency limits."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_headers: int = MAX_HEADERS,
        max_header_bytes: int = MAX_HEADER_BYTES,
        body_deadline: float = BODY_DEADLINE,
        max_concurrent: int = MAX_CONCURRENT,
    ) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.body_deadline = body_deadline
        self.max_concurrent = max_concurrent
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        size = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > self.max_headers or size > self.max_header_bytes:
            await _plain(
                send,
                431,
                f"at most {self.max_headers} header fields and {self.max_header_bytes} bytes",
                [],
            )
            return
        if self.active >= self.max_concurrent:
            await _plain(send, 503, "busy, try again shortly", [(b"retry-after", b"5")])
            return
        self.active += 1
        try:
            await _Deadline(self.body_deadline, receive, send).run(self.app, scope)
        finally:
            self.active -= 1


class _Deadline:
    """One request whose body must arrive before ``deadline`` seconds have passed."""

    def __init__(self, deadline: float, receive: Receive, send: Send) -> None:
        self.until = time.monotonic() + deadline
        self.deadline = deadline
        self._receive = receive
        self._send = send
        self.started = False
        self.expired = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        await app(scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.expired:
            return {"type": "http.disconnect"}
        try:
            async with asyncio.timeout(max(self.until - time.monotonic(), 0.0)):
                return await self._receive()
        except TimeoutError:
            self.expired = True
            if not self.started:
                self.started = True
                await _plain(
                    self._send, 408, f"the body must arrive within {self.deadline:g} s", []
                )
            return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.expired:
            return  # the 408 has been sent; whatever the app answers now is dropped
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
