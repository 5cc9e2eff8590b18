"""A real HTTP/1.1 server on 127.0.0.1 for tests, with routes set per test.

Usage (the ``web`` fixture starts one server per test and stops it afterwards)::

    from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 (`web` fixture)

    def test_something(web: WebServer) -> None:
        web.route("/page", body="<p>hi</p>", headers={"Link": '<...>; rel="webmention"'})
        web.route("/moved", status=302, headers={"Location": "/page"})

        def drip(ex: Exchange) -> None:          # custom behaviour runs in the server thread
            ex.start(200, {"Content-Type": "text/plain"})
            while ex.write(b"x") and ex.sleep(0.2):
                pass

        web.route("/slow", handler=drip)
        url = web.url("/page")                    # http://127.0.0.1:<port>/page
        ...
        assert web.requests_to("/page")[0].headers["user-agent"].startswith("indiebridge/")

Static routes answer with ``Content-Length``; the default ``Content-Type`` is
``text/html; charset=utf-8`` (pass ``content_type=None`` to send none).  Headers may be a
mapping or a list of pairs (to repeat a header or spell its name oddly, e.g. ``LinK``).
Unknown paths answer 404.  Every request is logged (``web.requests``) before it is
answered: method, path, query, headers (lowercased names), body.

``web.url(path, host="blog.example")`` builds a URL with another host name on the same
port, for clients that map fake host names to 127.0.0.1 themselves.

Stopping the server unblocks and joins every handler thread, so tests leave no threads
or sockets behind even if a handler streams forever (handlers should loop on
``ex.write`` / ``ex.sleep``, which return False once the client is gone or the server
stops).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

HeaderArg = Mapping[str, str] | Sequence[tuple[str, str]]


def _pairs(headers: HeaderArg | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: str
    header_list: list[tuple[str, str]]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        """Header names lowercased; repeated headers joined with ", "."""
        out: dict[str, str] = {}
        for name, value in self.header_list:
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


class Exchange:
    """A request as a custom handler sees it, with ways to answer it."""

    def __init__(self, handler: _Handler, request: Recorded) -> None:
        self._handler = handler
        self.request = request
        self.server: WebServer = handler.server.owner

    @property
    def stopping(self) -> bool:
        return self.server.stopping.is_set()

    def send(self, status: int = 200, headers: HeaderArg | None = None, body: bytes = b"") -> None:
        """A complete response with ``Content-Length``."""
        h = self._handler
        h.send_response(status)
        pairs = _pairs(headers)
        for name, value in pairs:
            h.send_header(name, value)
        if not any(n.lower() == "content-length" for n, _ in pairs):
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body and self.request.method != "HEAD":
            h.wfile.write(body)
        h.wfile.flush()

    def redirect(self, location: str, status: int = 302) -> None:
        self.send(status, {"Location": location})

    def start(self, status: int = 200, headers: HeaderArg | None = None) -> None:
        """Status and headers only; the body follows with ``write`` until the handler returns
        (the connection is closed then, which ends the body)."""
        h = self._handler
        h.close_connection = True
        h.send_response(status)
        for name, value in _pairs(headers):
            h.send_header(name, value)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()

    def write(self, data: bytes) -> bool:
        """Send body bytes; False once the client is gone or the server is stopping."""
        if self.stopping:
            return False
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self._handler.close_connection = True
            return False
        return True

    def sleep(self, seconds: float) -> bool:
        """Wait; False (at once) if the server is stopping."""
        return not self.server.stopping.wait(seconds)

    def reset(self) -> None:
        """Abort the connection with a TCP reset."""
        h = self._handler
        h.close_connection = True
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()


Handler = Callable[[Exchange], None]


@dataclass
class Route:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    handler: Handler | None = None
    methods: frozenset[str] | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end by themselves
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=parts.query,
            header_list=list(self.headers.items()),
            body=self._read_body(),
        )
        owner._log(request)
        exchange = Exchange(self, request)
        route = owner.routes.get(parts.path)
        try:
            if route is None or (route.methods is not None and self.command not in route.methods):
                status = 404 if route is None else 405
                exchange.send(status, {"Content-Type": "text/plain"}, b"not found")
            elif route.handler is not None:
                route.handler(exchange)
            else:
                exchange.send(route.status, route.headers, route.body)
        except OSError:
            self.close_connection = True  # the client went away: nothing to report

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, owner: WebServer) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            self.owner.errors.append(exc)


class WebServer:
    """The loopback server; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Recorded] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> WebServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.stopping.set()
        self._server.shutdown()
        self._thread.join()
        with self._server.sockets_lock:
            for sock in list(self._server.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- routes and URLs ------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def route(
        self,
        path: str,
        *,
        status: int = 200,
        headers: HeaderArg | None = None,
        body: str | bytes = b"",
        content_type: str | None = "text/html; charset=utf-8",
        handler: Handler | None = None,
        methods: Sequence[str] | None = None,
    ) -> None:
        """Answer ``path`` (without query) with a fixed response, or call ``handler``."""
        pairs = _pairs(headers)
        if content_type is not None and not any(n.lower() == "content-type" for n, _ in pairs):
            pairs.append(("Content-Type", content_type))
        self.routes[path] = Route(
            status=status,
            headers=pairs,
            body=body.encode("utf-8") if isinstance(body, str) else body,
            handler=handler,
            methods=frozenset(m.upper() for m in methods) if methods else None,
        )

    # ---- the log --------------------------------------------------------------------
    def _log(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture(name="web")
def web_fixture() -> Iterator[WebServer]:
    """A started ``WebServer``; stopped (threads joined) after the test."""
    with WebServer() as server:
        yield server
    if server.errors:
        raise AssertionError(f"test web server handler errors: {server.errors!r}")


# ``from tests.webserver import web`` also works (the fixture is registered as ``web``
# either way); importing ``web_fixture`` keeps linters from seeing the test argument
# ``web`` as a redefinition of the import.
web = web_fixture
