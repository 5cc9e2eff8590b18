"""The daemon's own HTTP limits (``bridge.federation.limits``): header count and size, a body
deadline, a concurrency cap, and the matching uvicorn settings, over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge.federation.limits import HTTPLimits, uvicorn_options

pytestmark = [pytest.mark.anyio, pytest.mark.category("http-limits")]

gate = asyncio.Event()


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{len(body)} bytes")


async def held(request: Request) -> PlainTextResponse:
    await gate.wait()
    return PlainTextResponse("done")


def limited(**options: Any) -> HTTPLimits:
    app = Starlette(routes=[Route("/", echo, methods=["POST"]), Route("/held", held)])
    return HTTPLimits(app, **options)


@contextlib.asynccontextmanager
async def serving(app: HTTPLimits) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **uvicorn_options())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


async def exchange(port: int, head: bytes, body_parts: list[bytes], pause: float = 0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):  # the server may answer and close early
            for part in body_parts:
                await asyncio.sleep(pause)
                writer.write(part)
                await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request_head(extra: list[str], length: int = 2) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: blog.example", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_an_ordinary_request_passes() -> None:
    async with serving(limited()) as port:
        answer = await exchange(port, request_head([]), [b"ok"])
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"2 bytes")


@pytest.mark.parametrize(
    "extra",
    [
        [f"X-H{n}: v" for n in range(150)],  # too many fields
        ["X-Big: " + "a" * 12_000, "X-Big2: " + "b" * 6_000],  # too many bytes in all
    ],
    ids=["count", "bytes"],
)
async def test_too_many_or_too_large_headers_are_431(extra: list[str]) -> None:
    async with serving(limited()) as port:
        answer = await exchange(port, request_head(extra), [b"ok"])
    assert answer.startswith(b"HTTP/1.1 431")


async def test_a_megabytes_header_block_is_cut_off_by_the_parser() -> None:
    """The review sent 8 MiB of headers; the parser stops buffering at 16 KiB."""
    async with serving(limited()) as port:
        head = request_head(["X-Huge: " + "a" * 8 * 1_048_576])
        answer = await exchange(port, head, [b"ok"])
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")) or answer == b""


async def test_a_dripped_body_gets_408_at_the_deadline() -> None:
    async with serving(limited(body_deadline=0.5)) as port:
        started = time.monotonic()
        # 3 of 20 bytes, one every 0.1 s, then silence: the body never completes.
        answer = await exchange(port, request_head([], length=20), [b"x"] * 3, pause=0.1)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408")
    assert took < 2.5


async def test_requests_past_the_cap_are_503_at_once() -> None:
    gate.clear()
    async with serving(limited(max_concurrent=2)) as port:
        head = b"GET /held HTTP/1.1\r\nHost: blog.example\r\n\r\n"
        parked = [asyncio.create_task(exchange(port, head, [])) for _ in range(2)]
        await asyncio.sleep(0.3)
        started = time.monotonic()
        answer = await exchange(port, head, [])
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in answer.lower()
        assert time.monotonic() - started < 1
        gate.set()
        for done in await asyncio.gather(*parked):
            assert done.startswith(b"HTTP/1.1 200")


def test_uvicorn_options_match_the_limits() -> None:
    options = uvicorn_options()
    assert options["h11_max_incomplete_event_size"] == 16_384
    assert options["timeout_keep_alive"] == 5
    uvicorn.Config(Starlette(), **options)  # every option is one uvicorn knows


async def test_a_websocket_upgrade_is_answered_as_plain_http() -> None:
    """No route speaks WebSocket, so uvicorn is told so (``ws="none"``): an upgrade request
    gets the app's ordinary answer, never a 101 handshake."""
    async with serving(limited()) as port:
        head = (
            b"GET /held HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        gate.set()
        try:
            answer = await exchange(port, head, [])
        finally:
            gate.clear()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:60]
    assert uvicorn_options()["ws"] == "none"
