"""The lean HTTP/1.1 delivery transport against real loopback servers, faults included.

Each test runs a small asyncio server whose handler answers raw bytes, so framing,
keep-alive, slowness, resets, garbage and TLS (a self-signed certificate made here) are
exactly what the test says.  The server counts connections, so reuse is observable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.errors import BlockedAddressError
from bridge.federation.delivery.http1 import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Peer"], Awaitable[None]]
OK = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"


class Peer:
    """A loopback server: counts connections and requests, runs ``handler`` per connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes | None:
        """Read one request (head and Content-Length body); None at the end of the stream."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def answering(*responses: bytes, close: bool = False, delay: float = 0.0) -> Handler:
    """Answer each request on a connection with the next response (the last repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: Peer) -> None:
        n = 0
        while await p.request(reader) is not None:
            if delay:
                await asyncio.sleep(delay)
            writer.write(responses[min(n, len(responses) - 1)])
            await writer.drain()
            n += 1
            if close:
                return

    return handler


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def client(transport: Http1Transport, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False
    )


def loopback(peer: Peer, path: str = "/inbox", host: str = "127.0.0.1") -> str:
    scheme = "https" if peer.tls else "http"
    return f"{scheme}://{host}:{peer.port}{path}"


async def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_content_length_responses_reuse_one_connection() -> None:
    async def main() -> None:
        async with Peer(answering(OK)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                for n in range(3):
                    r = await c.post(loopback(peer), content=b'{"n": %d}' % n)
                    assert (r.status_code, r.reason_phrase, r.content) == (202, "Accepted", b"ok")
            assert peer.connections == 1
            assert len(peer.requests) == 3
            first = peer.requests[0]
            assert first.startswith(b"POST /inbox HTTP/1.1\r\n")
            assert b"\r\nContent-Length: 8\r\n" in first and first.endswith(b'{"n": 0}')
            assert f"Host: 127.0.0.1:{peer.port}".encode() in first

    run(main())


def test_chunked_response_is_read_and_the_connection_reused() -> None:
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    async def main() -> None:
        async with Peer(answering(chunked)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                for _ in range(2):
                    r = await c.post(loopback(peer), content=b"{}")
                    assert r.status_code == 400 and r.content == b"hello, world"
            assert peer.connections == 1

    run(main())


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_no_reuse_when_the_peer_does_not_keep_alive(response: bytes) -> None:
    async def main() -> None:
        async with Peer(answering(response)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                for _ in range(2):
                    assert (await c.post(loopback(peer), content=b"{}")).status_code == 202
            assert peer.connections == 2

    run(main())


def test_interim_responses_are_skipped() -> None:
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK

    async def main() -> None:
        async with Peer(answering(response)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                for _ in range(2):
                    r = await c.post(loopback(peer), content=b"{}")
                    assert (r.status_code, r.content) == (202, b"ok")
            assert peer.connections == 1

    run(main())


def test_body_framed_by_close_is_read_to_the_end() -> None:
    response = b"HTTP/1.1 500 Oops\r\n\r\nthe whole story"

    async def main() -> None:
        async with Peer(answering(response, close=True)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                r = await c.post(loopback(peer), content=b"{}")
                assert (r.status_code, r.content) == (500, b"the whole story")
                assert (await c.post(loopback(peer), content=b"{}")).status_code == 500
            assert peer.connections == 2

    run(main())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_cut_and_the_connection_dropped(chunked: bool) -> None:
    big = b"x" * 1_000_000
    if chunked:
        response = b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(big)
        response += big + b"\r\n0\r\n\r\n"
    else:
        response = b"HTTP/1.1 500 E\r\nContent-Length: %d\r\n\r\n" % len(big) + big

    async def main() -> None:
        async with Peer(answering(response)) as peer:
            async with client(Http1Transport(allow_private=True, max_body=4096)) as c:
                for _ in range(2):
                    r = await c.post(loopback(peer), content=b"{}")
                    assert r.status_code == 500 and r.content == b"x" * 4096
            assert peer.connections == 2  # never reused after a partial read

    run(main())


def test_redirects_are_returned_not_followed() -> None:
    moved = b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"

    async def main() -> None:
        async with Peer(answering(moved)) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                r = await c.post(loopback(peer), content=b"{}")
            assert r.status_code == 308 and r.headers["location"] == "/elsewhere"
            assert len(peer.requests) == 1

    run(main())


@pytest.mark.parametrize(
    "response",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 2000 Huh\r\n\r\n",
        b"HTTP/1.1 202 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 202 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 202 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 202 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
    ids=["not-http", "bad-status", "bad-header", "bad-length", "huge-head", "short-body"],
)
def test_garbage_is_a_protocol_error(response: bytes) -> None:
    async def main() -> None:
        peer = Peer(answering(response, close=True))
        async with peer, client(Http1Transport(allow_private=True)) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post(loopback(peer), content=b"{}")

    run(main())


def test_slow_peer_times_out_on_read() -> None:
    async def main() -> None:
        peer = Peer(answering(OK, delay=5.0))
        async with peer, client(Http1Transport(allow_private=True), timeout=0.3) as c:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await c.post(loopback(peer), content=b"{}")
            assert time.monotonic() - started < 2.0

    run(main())


def test_slow_resolution_is_a_connect_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]

    async def main() -> None:
        transport = Http1Transport(allow_private=True, resolver=slow)
        async with client(transport, timeout=0.3) as c:
            with pytest.raises(httpx.ConnectTimeout):
                await c.post("http://slow.example/inbox", content=b"{}")

    run(main())


def test_reset_before_the_answer_is_an_error_not_a_hang() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: Peer) -> None:
        await p.request(reader)
        writer.transport.abort()

    async def main() -> None:
        async with Peer(reset) as peer, client(Http1Transport(allow_private=True)) as c:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await c.post(loopback(peer), content=b"{}")

    run(main())


def test_a_kept_connection_the_peer_closed_meanwhile_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, p: Peer) -> None:
        await p.request(reader)
        writer.write(OK)  # says keep-alive, then closes after a moment
        await writer.drain()
        await asyncio.sleep(0.1)

    async def main() -> None:
        async with Peer(once) as peer:
            async with client(Http1Transport(allow_private=True)) as c:
                assert (await c.post(loopback(peer), content=b"{}")).status_code == 202
                await asyncio.sleep(0.3)
                assert (await c.post(loopback(peer), content=b"{}")).status_code == 202
            assert peer.connections == 2 and len(peer.requests) == 2

    run(main())


def test_connections_per_host_are_limited() -> None:
    async def main() -> None:
        async with Peer(answering(OK, delay=0.1)) as peer:
            async with client(Http1Transport(allow_private=True, per_host=2)) as c:
                results = await asyncio.gather(
                    *(c.post(loopback(peer), content=b"{}") for _ in range(8))
                )
            assert [r.status_code for r in results] == [202] * 8
            assert peer.most_open <= 2 and peer.connections <= 2

    run(main())


@pytest.mark.parametrize("host", ["127.0.0.1", "peer.example"])
def test_private_addresses_are_refused_before_connecting(host: str) -> None:
    async def main() -> None:
        async with Peer(answering(OK)) as peer:
            transport = Http1Transport(resolver=to_loopback)
            async with client(transport) as c:
                with pytest.raises(BlockedAddressError, match=r"non-public address 127\.0\.0\.1"):
                    await c.post(loopback(peer, host=host), content=b"{}")
            assert peer.connections == 0

    run(main())


def test_unsupported_scheme() -> None:
    async def main() -> None:
        async with client(Http1Transport(allow_private=True)) as c:
            with pytest.raises(httpx.UnsupportedProtocol):
                await c.post("ftp://peer.example/inbox", content=b"{}")

    run(main())


def self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for ``name`` and a client context
    trusting only that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    trusting = ssl.create_default_context(cafile=str(cert_pem))
    return server, trusting


def test_tls_verifies_the_certificate_and_sends_sni(tmp_path: Path) -> None:
    server, trusting = self_signed(tmp_path, "peer.example")
    seen: list[str | None] = []
    server.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc]

    async def main() -> None:
        async with Peer(answering(OK), tls=server) as peer:
            url = loopback(peer, host="peer.example")
            kwargs = {"allow_private": True, "resolver": to_loopback}
            async with client(Http1Transport(ssl_context=trusting, **kwargs)) as c:  # type: ignore[arg-type]
                for _ in range(2):
                    assert (await c.post(url, content=b"{}")).status_code == 202
            assert peer.connections == 1
            # the default context (system CAs) refuses the self-signed certificate
            async with client(Http1Transport(**kwargs)) as c:  # type: ignore[arg-type]
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await c.post(url, content=b"{}")
            # a certificate for another name is refused too
            wrong = loopback(peer, host="other.example")
            async with client(Http1Transport(ssl_context=trusting, **kwargs)) as c:  # type: ignore[arg-type]
                with pytest.raises(httpx.ConnectError, match=r"match|mismatch"):
                    await c.post(wrong, content=b"{}")
        assert seen[:1] == ["peer.example"]
        assert "other.example" in seen

    run(main())


def test_the_worker_sends_through_it_and_records_refused_addresses(
    tmp_path: Path, key_files: Path
) -> None:
    from bridge import keys
    from bridge.db import Database
    from bridge.federation.delivery import DeliveryWorker, enqueue

    db = Database(tmp_path / "state.sqlite3")

    async def main() -> None:
        async with Peer(answering(OK)) as peer:
            inboxes = [loopback(peer, "/ok"), loopback(peer, "/private", host="peer.example")]
            enqueue(db, {"id": "https://blog.example/c", "type": "Create"}, inboxes)
            worker = DeliveryWorker(
                db,
                private_key=keys.load(key_files.parent).rsa,
                key_id="https://blog.example/actor#main-key",
                resolver=to_loopback,  # peer.example "resolves" to 127.0.0.1: refused
            )
            # 127.0.0.1 itself is refused too unless private addresses are allowed
            stats = await worker.run_until_idle()
            assert (stats.delivered, stats.failed) == (0, 2)
            assert peer.connections == 0
            errors = [r["last_error"] for r in db.query("SELECT last_error FROM deliveries")]
            assert all("non-public address 127.0.0.1" in e for e in errors), errors
            db.con.execute("UPDATE deliveries SET state = 'queued', tries = 0, next_try = 0")
            worker = DeliveryWorker(
                db,
                private_key=keys.load(key_files.parent).rsa,
                key_id="https://blog.example/actor#main-key",
                resolver=to_loopback,
                allow_private=True,
            )
            stats = await worker.run_until_idle()
            assert stats.delivered == 2 and peer.connections == 2  # two origins

    try:
        run(main())
        rows = db.query("SELECT inbox, state, last_error FROM deliveries ORDER BY inbox")
        assert all(r["state"] == "done" for r in rows)
    finally:
        db.close()
