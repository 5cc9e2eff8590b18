"""Sending webmentions for published posts, and Salmention, against real endpoints on
loopback (``tests.webserver``)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.conversations import webmentions
from bridge.db import Database
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio

BASE = "https://blog.example"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ctx(make_site: Callable[..., Path]) -> AsyncIterator[Context]:
    folder = make_site({"allow_private_addresses": True})
    config = config_mod.load(folder)
    context = make_context(config, Database(config.db_path), load_keys(config.state_dir))
    context.fetcher.timeout = 3.0
    yield context
    await context.fetcher.aclose()
    context.db.close()


def receiver(web: WebServer, path: str, status: int = 202) -> None:
    """A target page at ``path`` whose endpoint answers ``status``."""
    web.route(path, headers={"Link": f"<{path}/webmention>; rel=webmention"}, body="<p>t</p>")

    def endpoint(ex: Exchange) -> None:
        headers = {"Location": f"{path}/status/1"} if status == 201 else {}
        ex.send(status, headers, b"ok")

    web.route(f"{path}/webmention", handler=endpoint, methods=["POST"])


def received(web: WebServer, path: str) -> list[dict[str, list[str]]]:
    return [r.form for r in web.requests_to(f"{path}/webmention")]


async def test_send_to_new_and_removed_links_and_skip_own(ctx: Context, web: WebServer) -> None:
    for path in ("/a", "/c"):
        receiver(web, path)
    receiver(web, "/created", status=201)
    receiver(web, "/broken", status=500)
    web.route("/b", body="<p>no endpoint here</p>")
    source = f"{BASE}/posts/first-article/"
    html = (
        f'<p><a href="{web.url("/a")}">a</a> <a href="{web.url("/b")}">b</a> '
        f'<a href="{web.url("/created")}">c</a> <a href="{web.url("/broken")}">d</a> '
        f'<a href="{BASE}/posts/quick-note/">our own</a> <a href="#top">top</a> '
        f'<a href="{web.url("/a")}">a again</a></p>'
    )
    results = await webmentions.send_for_post(
        ctx, source, html, [web.url("/a"), web.url("/c"), f"{BASE}/posts/quick-note/"]
    )
    assert [r.target for r in results] == [
        web.url(p) for p in ("/a", "/b", "/created", "/broken", "/c")
    ]
    by_target = {r.target: r for r in results}
    assert by_target[web.url("/a")].ok and by_target[web.url("/a")].status == 202
    assert by_target[web.url("/b")].error == "no webmention endpoint"
    assert by_target[web.url("/created")].location == web.url("/created/status/1")
    assert by_target[web.url("/broken")].status == 500 and not by_target[web.url("/broken")].ok
    assert received(web, "/a") == [{"source": [source], "target": [web.url("/a")]}]
    assert received(web, "/c") == [{"source": [source], "target": [web.url("/c")]}]

    sent = webmentions.list_sent(ctx.db)
    assert {s["target"] for s in sent} == {r.target for r in results}
    row = next(s for s in sent if s["target"] == web.url("/broken"))
    assert row["status"] == 500 and not row["ok"] and "500" in row["error"]
    row = next(s for s in sent if s["target"] == web.url("/a"))
    assert row["ok"] and row["endpoint"] == web.url("/a/webmention") and row["sent"].endswith("Z")
    assert set(row) == {"source", "target", "endpoint", "status", "location", "error", "ok", "sent"}


async def test_resending_updates_the_stored_result(ctx: Context, web: WebServer) -> None:
    receiver(web, "/a", status=500)
    source = f"{BASE}/posts/first-article/"
    html = f'<a href="{web.url("/a")}">a</a>'
    await webmentions.send_for_post(ctx, source, html, [])
    receiver(web, "/a", status=202)
    await webmentions.send_for_post(ctx, source, html, [])
    (row,) = webmentions.list_sent(ctx.db)
    assert row["status"] == 202 and row["error"] == ""


async def test_private_endpoint_is_refused_when_not_allowed(
    make_site: Callable[..., Path], web: WebServer
) -> None:
    folder = make_site({"allow_private_addresses": False})
    config = config_mod.load(folder)
    ctx = make_context(config, Database(config.db_path), load_keys(config.state_dir))
    try:
        receiver(web, "/a")
        (result,) = await webmentions.send_for_post(
            ctx, f"{BASE}/posts/first-article/", f'<a href="{web.url("/a")}">a</a>', []
        )
        assert not result.ok and "discovery failed" in (result.error or "")
        assert web.requests == []
    finally:
        await ctx.fetcher.aclose()
        ctx.db.close()


def write_reply_post(ctx: Context, web: WebServer) -> str:
    post = ctx.config.content_dir / "posts" / "2026-01-20-salmon.md"
    post.write_text(
        "---\n"
        "date: 2026-01-20T12:00:00Z\n"
        f"in_reply_to: {web.url('/upstream')}\n"
        "---\n"
        f"Replying, and see [this]({web.url('/linked')}) and [mine]({BASE}/posts/quick-note/).\n",
        encoding="utf-8",
    )
    site_mod.build(ctx.config)
    return "salmon"


async def test_salmention_waits_for_the_rebuilt_page(ctx: Context, web: WebServer) -> None:
    receiver(web, "/upstream")
    receiver(web, "/linked")
    slug = write_reply_post(ctx, web)
    page = ctx.config.output_dir / "posts" / slug / "index.html"
    os.utime(page, (time.time() - 60, time.time() - 60))
    webmentions.queue_salmention(ctx.db, slug)
    assert await webmentions.run_due_salmentions(ctx) == 0  # page not rebuilt yet
    assert received(web, "/upstream") == []
    later = time.time() + 1  # the rebuild that shows the new comment (coarse mtime clocks)
    os.utime(page, (later, later))
    assert await webmentions.process_pending(ctx) == 1
    source = ctx.config.post_url(slug)
    assert received(web, "/upstream") == [{"source": [source], "target": [web.url("/upstream")]}]
    assert received(web, "/linked") == [{"source": [source], "target": [web.url("/linked")]}]
    assert await webmentions.run_due_salmentions(ctx) == 0  # sent once
    assert {r["target"] for r in webmentions.list_sent(ctx.db)} == {
        web.url("/upstream"),
        web.url("/linked"),
    }


async def test_salmention_is_sent_after_the_longest_wait(ctx: Context, web: WebServer) -> None:
    receiver(web, "/upstream")
    receiver(web, "/linked")
    slug = write_reply_post(ctx, web)
    page = ctx.config.output_dir / "posts" / slug / "index.html"
    os.utime(page, (time.time() - 60, time.time() - 60))
    webmentions.queue_salmention(ctx.db, slug)
    assert await webmentions.run_due_salmentions(ctx, max_wait=0) == 1
    assert len(received(web, "/upstream")) == 1


async def test_salmention_of_a_post_without_links_sends_nothing(
    ctx: Context, web: WebServer
) -> None:
    site_mod.build(ctx.config)
    assert await webmentions.salmention(ctx, "quick-note") == []
    assert await webmentions.salmention(ctx, "no-such-post") == []
    assert web.requests == []
