"""A lean HTTP/1.1 transport for deliveries: httpx's interface, asyncio streams underneath.

``Http1Transport`` is an ``httpx.AsyncBaseTransport``, so the worker keeps its
``httpx.AsyncClient`` (signing auth flow, headers, timeouts); only httpcore and anyio are
left out.  It sends one request per connection at a time and keeps connections alive per
origin.  Guarantees, the same as httpx's transport gives the worker (tests in
tests/federation/test_delivery_http1.py, against real loopback servers):

* Address guard at connect time: the host is resolved once, the connection refused
  (``BlockedAddressError``) if any address is not public unless ``allow_private``, and the
  checked address itself is connected to (no second lookup, so no DNS rebinding).
* TLS with certificate verification and SNI (the URL's host name), from one context.
* Timeouts from the request (httpx's ``connect``/``read``/``write``/``pool``); the worker
  adds its overall deadline.  Errors are httpx's (``ConnectTimeout``, ``ReadTimeout``,
  ``ConnectError``, ``ReadError``, ``RemoteProtocolError``...), so classification holds.
* At most ``max_body`` bytes of a response body are read; the headers at most
  ``MAX_HEAD`` bytes.  Redirects are not followed (the client's ``follow_redirects=False``;
  a transport never follows them).
* Bodies framed by ``Content-Length``, by ``chunked`` or by the end of the connection.
* At most ``per_host`` connections per origin, a request waiting (``pool`` timeout) for one.
* A connection is reused only when its response was read completely, both sides allowed
  keep-alive (HTTP/1.1 without ``Connection: close``), and it sat idle less than
  ``keepalive`` seconds, and the peer has not closed it meanwhile (its end of stream
  arrived while idle).  Nothing is sent twice: a request that fails on a reused
  connection is an error like any other (the worker's schedule retries it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import httpx

from bridge.errors import BlockedAddressError
from bridge.federation.addresses import (
    Resolver,
    is_public_address,
    parse_ip,
    system_resolver,
    tls_context,
)

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
MAX_INTERIM = 5
KEEPALIVE = 30.0
Origin = tuple[str, str, int]


class _Conn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float, keepalive: float) -> bool:
        return (
            now - self.idle_since < keepalive
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and not self.reader._buffer  # type: ignore[attr-defined]  # unasked-for bytes
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Host:
    """The connections of one origin: a semaphore of ``per_host`` and the idle ones."""

    def __init__(self, per_host: int) -> None:
        self.slots = asyncio.Semaphore(per_host)
        self.idle: list[_Conn] = []
        self.users = 0


class Http1Transport(httpx.AsyncBaseTransport):
    """See the module docstring."""

    def __init__(
        self,
        *,
        per_host: int = 4,
        max_body: int = 4096,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self.per_host = per_host
        self.max_body = max_body
        self.allow_private = allow_private
        self.keepalive = keepalive
        self._resolver = resolver or system_resolver
        self._ssl = ssl_context
        self._hosts: dict[Origin, _Host] = {}

    # ---- httpx interface -------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        if not url.host:
            raise httpx.UnsupportedProtocol(f"no host in {url}")
        origin: Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = self._head(request, len(body))
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host(self.per_host)
        host.users += 1
        try:
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await host.slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(f"no connection to {url.host} free in time") from None
            try:
                return await self._exchange(host, origin, head, body, timeouts, request)
            finally:
                host.slots.release()
        finally:
            host.users -= 1
            if host.users == 0 and not host.idle:
                self._hosts.pop(origin, None)

    async def aclose(self) -> None:
        hosts, self._hosts = self._hosts, {}
        for host in hosts.values():
            for conn in host.idle:
                conn.close()
            host.idle.clear()

    # ---- one exchange ----------------------------------------------------------------

    async def _exchange(
        self,
        host: _Host,
        origin: Origin,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> httpx.Response:
        now = time.monotonic()
        conn = None
        while host.idle and conn is None:
            idle = host.idle.pop()
            if idle.usable(now, self.keepalive):
                conn = idle
            else:
                idle.close()
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"))
        return await self._send(host, conn, head, body, timeouts, request)

    async def _send(
        self,
        host: _Host,
        conn: _Conn,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> httpx.Response:
        keep = False
        try:
            try:
                conn.writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    conn.writer.write(body)
                async with asyncio.timeout(timeouts.get("write")):
                    await conn.writer.drain()
            except TimeoutError:
                raise httpx.WriteTimeout("timed out sending the request") from None
            except OSError as exc:
                raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    response, keep = await _read_response(conn.reader, self.max_body, request)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out waiting for the response") from None
            except ConnectionError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            return response
        finally:
            if keep and len(host.idle) < self.per_host:
                conn.idle_since = time.monotonic()
                host.idle.append(conn)
            else:
                conn.close()

    async def _connect(self, origin: Origin, timeout: float | None) -> _Conn:
        scheme, name, port = origin
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._check(name, port)
                error: Exception | None = None
                for address in addresses:
                    try:
                        reader, writer = await asyncio.open_connection(
                            address,
                            port,
                            ssl=self._tls() if scheme == "https" else None,
                            server_hostname=name if scheme == "https" else None,
                            limit=MAX_HEAD,
                        )
                        return _Conn(reader, writer)
                    except (OSError, ssl.SSLError) as exc:
                        error = exc
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out") from None
        raise httpx.ConnectError(f"cannot connect to {name}:{port}: {error}")

    async def _check(self, name: str, port: int) -> list[str]:
        """The addresses of ``name`` to connect to; raise if any of them is not public."""
        literal = parse_ip(name)
        if literal is not None:
            ips = [literal]
        else:
            try:
                found = await self._resolver(name, port)
            except OSError as exc:
                raise httpx.ConnectError(f"cannot resolve {name}: {exc}") from None
            ips = [ip for ip in map(parse_ip, found) if ip is not None]
            if not ips:
                raise httpx.ConnectError(f"cannot resolve {name}: no addresses")
        if not self.allow_private:
            for ip in ips:
                if not is_public_address(ip):
                    raise BlockedAddressError(f"{name} resolves to non-public address {ip}")
        return [str(ip) for ip in ips]

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = tls_context()
        return self._ssl

    @staticmethod
    def _head(request: httpx.Request, length: int) -> bytes:
        target = request.url.raw_path
        lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
        seen_length = False
        for name, value in request.headers.raw:
            if name.lower() == b"content-length":
                seen_length = True
            elif name.lower() == b"transfer-encoding":
                continue  # the body is in memory: always sent with a Content-Length
            lines.append(name + b": " + value)
        if not seen_length and (length or request.method in ("POST", "PUT")):
            lines.append(b"Content-Length: " + str(length).encode("ascii"))
        return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_response(
    reader: asyncio.StreamReader, max_body: int, request: httpx.Request
) -> tuple[httpx.Response, bool]:
    """The response (body cut at ``max_body``) and whether the connection may be reused.

    Interim 1xx responses (a ``100 Continue`` sent unasked) are skipped, as RFC 9110
    section 15.2 asks of a client; a ``101`` is an error (we never ask to switch).
    """
    for _ in range(MAX_INTERIM):
        status, reason, version, headers = _parse_head(await _read_head(reader))
        if not 100 <= status < 200:
            break
        if status == 101:
            raise httpx.RemoteProtocolError("unexpected 101 Switching Protocols")
    else:
        raise httpx.RemoteProtocolError(f"more than {MAX_INTERIM} interim responses")
    fields = httpx.Headers(headers)
    connection = fields.get("connection", "").lower()
    keep = version == b"HTTP/1.1" and "close" not in connection
    if request.headers.get("connection", "").lower() == "close":
        keep = False
    body, complete = await _read_body(reader, fields, status, request.method, max_body)
    response = httpx.Response(
        status,
        headers=headers,
        content=body,
        request=request,
        extensions={"reason_phrase": reason, "http_version": version},
    )
    return response, keep and complete


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise httpx.RemoteProtocolError("server disconnected without a response") from None
        raise httpx.RemoteProtocolError("the response ended inside its headers") from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError(f"response headers longer than {MAX_HEAD} bytes") from None


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    version = parts[0]
    if (
        len(parts) < 2
        or version not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        shown = lines[0][:80].decode("latin-1")
        raise httpx.RemoteProtocolError(f"malformed status line {shown!r}")
    status = int(parts[1])
    if status < 100:
        raise httpx.RemoteProtocolError(f"malformed status {status}")
    reason = parts[2] if len(parts) > 2 else b""
    if len(lines) - 1 > MAX_HEADERS:
        raise httpx.RemoteProtocolError(f"more than {MAX_HEADERS} response headers")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError("malformed response header")
        headers.append((name, value.strip()))
    return status, reason, version, headers


async def _read_body(
    reader: asyncio.StreamReader, fields: httpx.Headers, status: int, method: str, limit: int
) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether all of it (and no more) was read."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", True
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, limit)
    length_text = fields.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise httpx.RemoteProtocolError(f"malformed Content-Length {length_text[:40]!r}")
        length = int(length_text)
        try:
            data = await reader.readexactly(min(length, limit))
        except asyncio.IncompleteReadError as exc:
            raise httpx.RemoteProtocolError("the response body ended early") from exc
        return data, length <= limit
    data = await reader.read(limit)  # framed by the end of the connection
    out = bytearray(data)
    while data and len(out) < limit:
        data = await reader.read(limit - len(out))
        out += data
    return bytes(out), False


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    out = bytearray()
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("malformed chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return bytes(out), True
            if len(out) + size > limit:
                out += await reader.readexactly(limit - len(out))
                return bytes(out), False
            out += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise httpx.RemoteProtocolError("malformed chunk")
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("the chunked body ended early") from exc
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError("malformed chunked body") from None
