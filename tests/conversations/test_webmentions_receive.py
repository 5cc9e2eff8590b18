"""Receiving webmentions: the endpoint's checks, then verification against real HTML
served over loopback (``tests.webserver``), and what ends up on the built page."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mf2py
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge import config as config_mod
from bridge.conversations import moderation, webmentions
from bridge.db import Database
from bridge.federation import followers
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from bridge.site.comments import comment_id
from bridge.site.posts import Comment
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio

BASE = "https://blog.example"
POST = f"{BASE}/posts/first-article/"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Site:
    def __init__(self, ctx: Context, folder: Path) -> None:
        self.ctx = ctx
        self.folder = folder
        self.dirty: list[str] = []
        self.notified = 0
        ctx.mark_dirty = self.dirty.append

    def notify(self) -> None:
        self.notified += 1

    async def post(self, data: Any, content_type: str | None = None) -> httpx.Response:
        async def endpoint(request: Request) -> Response:
            return await webmentions.receive(self.ctx, request, self.notify)

        app = Starlette(routes=[Route("/webmention", endpoint, methods=["POST"])])
        headers = {"Content-Type": content_type} if content_type else {}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE
        ) as client:
            if isinstance(data, dict):
                return await client.post("/webmention", data=data, headers=headers)
            return await client.post("/webmention", content=data, headers=headers)

    async def mention(self, source: str, target: str = POST) -> int:
        response = await self.post({"source": source, "target": target})
        assert response.status_code == 202, response.text
        return await webmentions.process_pending(self.ctx)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.ctx.db.query("SELECT * FROM webmentions_in ORDER BY id")]

    def comment(self, source: str, target: str = POST) -> Comment | None:
        found = self.ctx.comments.get(comment_id("webmention", f"{source} {target}"))
        return found[1] if found else None

    def build(self) -> str:
        site_mod.build(self.ctx.config)
        return (self.ctx.config.output_dir / "posts/first-article/index.html").read_text("utf-8")


@pytest.fixture
def site_factory(make_site: Callable[..., Path]) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(**overrides: Any) -> Site:
        folder = make_site({"allow_private_addresses": True, **overrides})
        shutil.rmtree(folder / "content" / "comments")
        config = config_mod.load(folder)
        site_mod.build(config)
        ctx = make_context(config, Database(config.db_path), load_keys(config.state_dir))
        ctx.fetcher.timeout = 3.0
        s = Site(ctx, folder)
        made.append(s)
        return s

    yield make
    for s in made:
        s.ctx.db.close()


@pytest.fixture
async def site(site_factory: Callable[..., Site]) -> Any:
    s = site_factory()
    yield s
    await s.ctx.fetcher.aclose()


def page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><title>t</title>{head}</head><body>{body}</body></html>"


def entry(inner: str, author: str = '<a class="p-author h-card" href="/">Sam Source</a>') -> str:
    return page(
        f'<article class="h-entry">{author}<a class="u-url" href="/reply">permalink</a>'
        f'<time class="dt-published" datetime="2026-03-01T10:00:00+0000">1 March</time>'
        f"{inner}</article>"
    )


# ---- the endpoint's checks -------------------------------------------------------------------

REJECTED = {
    "missing source": {"target": POST},
    "missing target": {"source": "https://ok.example/p"},
    "empty source": {"source": "", "target": POST},
    "ftp source": {"source": "ftp://ok.example/p", "target": POST},
    "javascript source": {"source": "javascript:alert(1)", "target": POST},
    "relative source": {"source": "/p", "target": POST},
    "mailto target": {"source": "https://ok.example/p", "target": "mailto:me@blog.example"},
    "relative target": {"source": "https://ok.example/p", "target": "/posts/first-article/"},
    "same url": {"source": POST, "target": POST},
    "same url but fragment": {"source": POST + "#c", "target": POST},
    "other site": {"source": "https://ok.example/p", "target": "https://other.example/posts/x/"},
    "home page": {"source": "https://ok.example/p", "target": BASE + "/"},
    "no such post": {"source": "https://ok.example/p", "target": BASE + "/posts/nope/"},
    "draft post": {"source": "https://ok.example/p", "target": BASE + "/posts/not-yet/"},
    "tag page": {"source": "https://ok.example/p", "target": BASE + "/tags/python/"},
    "too long": {"source": "https://ok.example/" + "a" * 3000, "target": POST},
}


@pytest.mark.parametrize("form", REJECTED.values(), ids=list(REJECTED))
async def test_invalid_requests_get_400_with_a_reason(site: Site, form: dict[str, str]) -> None:
    response = await site.post(form)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert len(response.text.strip().splitlines()) == 1 and response.text.strip()
    assert site.rows() == [] and site.notified == 0


async def test_wrong_content_type_gets_400(site: Site) -> None:
    response = await site.post(
        b'{"source": "https://ok.example/p"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert "x-www-form-urlencoded" in response.text


async def test_valid_request_is_stored_and_answered_202_without_location(site: Site) -> None:
    form = {"source": "https://ok.example/p", "target": POST + "#comments"}
    response = await site.post(form)
    assert response.status_code == 202
    assert "location" not in response.headers
    again = await site.post(form)
    assert again.status_code == 202
    rows = site.rows()
    assert [(r["source"], r["target"], r["status"]) for r in rows] == [
        ("https://ok.example/p", POST + "#comments", "new")
    ]
    assert site.notified == 1
    # Also accepted: the post's ActivityStreams id and the URL without its trailing slash.
    for target in (BASE + "/ap/posts/first-article.json", BASE + "/posts/first-article"):
        assert (
            await site.post({"source": "https://ok.example/p", "target": target})
        ).status_code == 202


async def test_blocked_source_is_dropped_quietly(site: Site) -> None:
    followers.block(site.ctx.db, "spam.example")
    response = await site.post({"source": "https://www.spam.example/p", "target": POST})
    assert response.status_code == 202
    assert site.rows() == []


# ---- verification ----------------------------------------------------------------------------

KINDS = {
    "reply": (
        '<a class="u-in-reply-to" href="{t}">re</a><div class="e-content"><p>So true!</p></div>'
    ),
    "like": '<a class="u-like-of" href="{t}">liked</a>',
    "repost": '<a class="u-repost-of" href="{t}">reposted</a>',
    "bookmark": '<a class="u-bookmark-of" href="{t}">saved</a>',
    "mention": '<div class="e-content"><p>See <a href="{t}">this post</a>.</p></div>',
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_verified_source_becomes_a_comment(site: Site, web: WebServer, kind: str) -> None:
    web.route("/reply", body=entry(KINDS[kind].format(t=POST)))
    source = web.url("/reply")
    assert await site.mention(source) == 1
    c = site.comment(source)
    assert c is not None
    assert c.id == comment_id("webmention", f"{source} {POST}")
    assert (c.type, c.protocol, c.status, c.source, c.target) == (
        kind, "webmention", "approved", source, POST,
    )  # fmt: skip
    assert c.author.name == "Sam Source"
    assert c.author.url == web.url("/")
    assert c.published.isoformat() == "2026-03-01T10:00:00+00:00"
    if kind == "reply":
        assert c.content == "<p>So true!</p>"
    elif kind != "mention":
        assert c.content == ""
    assert site.dirty == ["first-article"]
    assert site.rows()[0]["status"] == "done" and site.rows()[0]["error"] == ""
    assert web.requests_to("/reply")[0].headers["accept"].startswith("text/html")


async def test_comments_from_webmentions_read_back_with_mf2py(site: Site, web: WebServer) -> None:
    web.route("/reply", body=entry(KINDS["reply"].format(t=POST)))
    web.route("/like", body=entry(KINDS["like"].format(t=POST)))
    await site.mention(web.url("/reply"))
    await site.mention(web.url("/like"))
    parsed = mf2py.parse(doc=site.build(), url=POST)
    post = next(i for i in parsed["items"] if "h-entry" in i["type"])
    (reply,) = post["properties"]["comment"]
    assert reply["properties"]["author"][0]["properties"]["name"] == ["Sam Source"]
    assert "h-card" in reply["properties"]["author"][0]["type"]
    assert reply["properties"]["content"][0]["value"] == "So true!"
    (like,) = post["properties"]["like"]
    assert like["properties"]["url"] == [web.url("/like")]


async def test_resent_webmention_updates_the_comment(site: Site, web: WebServer) -> None:
    web.route("/reply", body=entry(KINDS["reply"].format(t=POST)))
    source = web.url("/reply")
    await site.mention(source)
    first = site.comment(source)
    web.route(
        "/reply",
        body=entry(
            f'<a class="u-in-reply-to" href="{POST}">re</a>'
            '<div class="e-content"><p>Edited: even truer.</p></div>'
        ),
    )
    await site.mention(source)
    second = site.comment(source)
    assert first is not None and second is not None
    assert second.content == "<p>Edited: even truer.</p>"
    assert second.published == first.published and second.updated is not None
    assert len(list(site.ctx.comments.iter_all())) == 1
    assert [r["status"] for r in site.rows()] == ["done"]


@pytest.mark.parametrize("status", [410, 404])
async def test_gone_source_removes_the_comment(site: Site, web: WebServer, status: int) -> None:
    web.route("/reply", body=entry(KINDS["reply"].format(t=POST)))
    source = web.url("/reply")
    await site.mention(source)
    assert site.comment(source) is not None
    web.route("/reply", status=status, body="<p>deleted</p>")
    site.dirty.clear()
    await site.mention(source)
    assert site.comment(source) is None
    assert site.dirty == ["first-article"]


async def test_source_without_the_link_any_more_removes_the_comment(
    site: Site, web: WebServer
) -> None:
    web.route("/reply", body=entry(KINDS["mention"].format(t=POST)))
    source = web.url("/reply")
    await site.mention(source)
    assert site.comment(source) is not None
    web.route("/reply", body=entry('<div class="e-content">No link now.</div>'))
    await site.mention(source)
    assert site.comment(source) is None
    assert "does not link" in site.rows()[-1]["error"]


async def test_link_in_a_comment_or_escaped_text_does_not_count(site: Site, web: WebServer) -> None:
    web.route(
        "/fake", body=page(f"<!-- <a href='{POST}'>x</a> --><code>&lt;a href={POST}&gt;</code>")
    )
    source = web.url("/fake")
    await site.mention(source)
    assert site.comment(source) is None


async def test_transient_failures_are_retried_then_given_up(site: Site, web: WebServer) -> None:
    web.route("/flaky", status=503, body="busy")
    source = web.url("/flaky")
    await site.mention(source)
    (row,) = site.rows()
    assert row["status"] == "new" and row["tries"] == 1 and row["next_try"] > row["received"]
    assert await webmentions.process_pending(site.ctx) == 0  # not due yet
    for _ in webmentions.RETRY_DELAYS:
        with site.ctx.db.tx() as con:
            con.execute("UPDATE webmentions_in SET next_try = 0")
        await webmentions.process_pending(site.ctx)
    (row,) = site.rows()
    assert row["status"] == "failed" and "503" in row["error"]
    assert len(web.requests_to("/flaky")) == len(webmentions.RETRY_DELAYS) + 1


async def test_retry_succeeds_when_the_source_comes_back(site: Site, web: WebServer) -> None:
    web.route("/later", status=500)
    source = web.url("/later")
    await site.mention(source)
    web.route("/later", body=entry(KINDS["like"].format(t=POST)))
    with site.ctx.db.tx() as con:
        con.execute("UPDATE webmentions_in SET next_try = 0")
    await webmentions.process_pending(site.ctx)
    c = site.comment(source)
    assert c is not None and c.type == "like"


async def test_private_addresses_are_refused_unless_allowed(
    site_factory: Callable[..., Site], web: WebServer
) -> None:
    s = site_factory(allow_private_addresses=False)
    try:
        web.route("/reply", body=entry(KINDS["reply"].format(t=POST)))
        source = web.url("/reply")
        await s.mention(source)
        assert s.comment(source) is None
        (row,) = s.rows()
        assert row["status"] == "done" and "refused" in row["error"]
        assert web.requests_to("/reply") == []
    finally:
        await s.ctx.fetcher.aclose()


async def test_oversized_source_is_not_retried(site: Site, web: WebServer) -> None:
    web.route("/big", body="<p>" + "x" * 2_000_000 + f'<a href="{POST}">p</a></p>')
    source = web.url("/big")
    await site.mention(source)
    (row,) = site.rows()
    assert row["status"] == "done" and "larger than" in row["error"]
    assert site.comment(source) is None


async def test_author_page_is_resolved_to_its_representative_hcard(
    site: Site, web: WebServer
) -> None:
    web.route(
        "/about",
        body=page(
            f'<div class="h-card"><a class="u-url u-uid p-name" href="{web.url("/about")}">'
            'Ada Author</a><img class="u-photo" src="/ada.png" alt=""></div>'
        ),
    )
    web.route(
        "/reply",
        body=entry(
            KINDS["reply"].format(t=POST), author='<a class="u-author" href="/about">me</a>'
        ),
    )
    await site.mention(web.url("/reply"))
    c = site.comment(web.url("/reply"))
    assert c is not None
    assert (c.author.name, c.author.url, c.author.photo) == (
        "Ada Author", web.url("/about"), web.url("/ada.png"),
    )  # fmt: skip


async def test_page_without_microformats_is_a_mention_named_after_its_domain(
    site: Site, web: WebServer
) -> None:
    web.route("/plain", body=page(f'<p>I liked <a href="{POST}">this</a>.</p>'))
    web.route("/text", body=f"see {POST}", content_type="text/plain")
    for path in ("/plain", "/text"):
        await site.mention(web.url(path))
        c = site.comment(web.url(path))
        assert c is not None and c.type == "mention"
        assert c.author.name == "127.0.0.1" and c.author.url == web.url("/")


HOSTILE = (
    '<p onclick="alert(1)" style="x">Hi<script>alert(2)</script>'
    '<a href="javascript:alert(3)">js</a><img src=x onerror=alert(4)>'
    '<svg onload="alert(5)"></svg><iframe src="https://evil.example/"></iframe>'
    '<form><input name="pw"></form><style>*{}</style><a href="/rel">relative</a></p>'
)


async def test_hostile_source_content_never_reaches_the_page(site: Site, web: WebServer) -> None:
    web.route(
        "/evil",
        body=entry(
            f'<a class="u-in-reply-to" href="{POST}">re</a><div class="e-content">{HOSTILE}</div>',
            author=(
                '<a class="p-author h-card" href="javascript:alert(6)">'
                "<span class=p-name>Eve\u202e\u2066 <b>bold</b></span>"
                '<img class="u-photo" src="javascript:alert(7)" alt=""></a>'
            ),
        ),
    )
    source = web.url("/evil")
    await site.mention(source)
    c = site.comment(source)
    assert c is not None and c.type == "reply"
    assert f'<a href="{web.url("/rel")}" rel="nofollow ugc noopener">relative</a>' in c.content
    assert "\u202e" not in c.author.name and "\u2066" not in c.author.name
    assert c.author.photo == "" and c.author.url == web.url("/")
    html = site.build()
    article = html[html.index(f'id="c-{c.id}"') :]
    article = article[: article.index("</article>")]
    for bad in ("<script", "onclick", "onerror", "onload", "javascript:", "<svg", "<iframe",
                "<form", "<input", "<style", "style=", "alert(", "\u202e"):  # fmt: skip
        assert bad not in article, bad
    assert "<bdi>Eve bold</bdi>" in article


async def test_reply_to_a_comment_is_nested(site: Site, web: WebServer) -> None:
    parent = Comment(
        id=comment_id("activitypub", "https://social.example/notes/1"),
        type="reply",
        protocol="activitypub",
        source="https://social.example/@a/1",
        target=POST,
        author=moderation_author(),
        content="<p>parent</p>",
        published=moderation.parse_time("2026-02-01T00:00:00Z"),  # type: ignore[arg-type]
        object_id="https://social.example/notes/1",
    )
    site.ctx.comments.write("first-article", parent)
    web.route(
        "/nested",
        body=entry(
            f'<a class="u-in-reply-to" href="https://social.example/@a/1">a</a>'
            f'<a class="u-in-reply-to" href="{POST}">b</a><div class="e-content">child</div>'
        ),
    )
    await site.mention(web.url("/nested"))
    c = site.comment(web.url("/nested"))
    assert c is not None and c.type == "reply" and c.in_reply_to == "https://social.example/@a/1"
    parsed = mf2py.parse(doc=site.build(), url=POST)
    post = next(i for i in parsed["items"] if "h-entry" in i["type"])
    (top,) = post["properties"]["comment"]
    assert "child" in str(top)


def moderation_author() -> Any:
    from bridge.site.posts import CommentAuthor

    return CommentAuthor(name="Parent", url="https://social.example/@a")


async def test_manual_policy_and_rejection(
    site_factory: Callable[..., Site], web: WebServer
) -> None:
    s = site_factory(comments_policy="manual")
    try:
        web.route("/reply", body=entry(KINDS["reply"].format(t=POST)))
        source = web.url("/reply")
        await s.mention(source)
        c = s.comment(source)
        assert c is not None and c.status == "pending"
        assert "So true" not in s.build()
        moderation.reject(s.ctx, c.id)
        await s.mention(source)
        assert s.comment(source) is None
        assert "rejected" in s.rows()[-1]["error"]
    finally:
        await s.ctx.fetcher.aclose()
