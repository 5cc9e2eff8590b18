"""A built file is served whole as it was when opened, while a rebuild replaces it
(``bridge.daemon.static_file``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bridge.daemon import static_file


def test_a_page_replaced_while_it_is_served_arrives_whole(tmp_path: Path) -> None:
    """The length and the body come from one open file: the page is renamed over (as a
    build replaces it) after the response was made and before it is sent."""
    page = tmp_path / "index.html"
    page.write_bytes(b"<p>old</p>")

    async def serve(request: Request) -> Response:
        response = await static_file.file_response(page, media_type="text/html")
        new = tmp_path / ".index.html.new"
        new.write_bytes(b"<p>the new page, longer than the old one</p>")
        os.replace(new, page)
        return response

    app = Starlette(routes=[Route("/", serve)])

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/")

    got = asyncio.run(fetch())
    assert got.content == b"<p>old</p>"
    assert got.headers["content-length"] == str(len(b"<p>old</p>"))
    assert got.headers["etag"] and got.headers["last-modified"]


def test_a_file_over_the_limit_is_streamed_with_range_support(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static_file, "WHOLE_LIMIT", 4)
    media = tmp_path / "clip.bin"
    media.write_bytes(b"0123456789")
    response = asyncio.run(static_file.file_response(media, media_type="audio/mpeg"))
    assert isinstance(response, FileResponse)
