"""``DaemonApp`` answers ``POST /inbox`` and ``POST /ap/inbox`` before Starlette's
middleware and router; everything else still goes through them."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bridge.daemon.app import DaemonApp

pytestmark = pytest.mark.anyio


async def _page(request: Request) -> Response:
    return PlainTextResponse("page")


def _app(inbox: object) -> DaemonApp:
    app = DaemonApp(routes=[Route("/{path:path}", _page, methods=["GET"])])
    app.inbox = inbox  # type: ignore[assignment]
    return app


async def test_inbox_posts_reach_the_handler_and_other_requests_the_router() -> None:
    seen: list[str] = []

    async def inbox(request: Request) -> Response:
        seen.append(request.url.path + " " + (await request.body()).decode())
        return Response(status_code=202)

    transport = httpx.ASGITransport(app=_app(inbox))
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        assert (await client.post("/inbox", content=b"a")).status_code == 202
        assert (await client.post("/ap/inbox", content=b"b")).status_code == 202
        assert (await client.get("/inbox")).text == "page"  # not a POST: the router
        assert (await client.post("/other")).status_code == 405  # the router's answer
    assert seen == ["/inbox a", "/ap/inbox b"]


async def test_a_failing_inbox_handler_is_answered_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def inbox(request: Request) -> Response:
        raise RuntimeError("broken")

    transport = httpx.ASGITransport(app=_app(inbox))
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        response = await client.post("/inbox", content=b"{}")
    assert response.status_code == 500
    assert "inbox request failed: broken" in caplog.text
