"""Smaller ways to abuse comments: self-sourced and query-string webmentions, Salmention
amplification by quick edits, and approval that survives an edit.

* A webmention whose source is one of our own pages, or the same page under many query
  strings (``/p?1``, ``/p?2``...), used to become comments each.
* Thirty edits of one reply caused 140 Salmention requests: one round per edit.
* Under ``comments_policy = "manual"`` an approved comment stayed approved whatever its
  author changed it into.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.config import SiteConfig
from bridge.conversations import moderation, salmention, webmentions
from bridge.federation.context import Context
from bridge.site import build as site_mod
from tests.security.conftest import (
    ALICE,
    POST_SLUG,
    InboxHarness,
    SpyBackend,
    context_with_fetcher,
    create,
    guarded_fetcher,
    note,
)
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = [pytest.mark.anyio]


@pytest.fixture
async def wm(hostile_site: SiteConfig, spy: SpyBackend) -> AsyncIterator[Context]:
    ctx = context_with_fetcher(hostile_site, guarded_fetcher(spy))
    yield ctx
    await ctx.fetcher.aclose()
    ctx.db.close()


def reply_page(target: str, text: str = "Nice") -> str:
    return (
        '<div class="h-entry"><p class="p-author h-card">Eve</p>'
        f'<a class="u-in-reply-to" href="{target}">re</a><p class="e-content">{text}</p></div>'
    )


# ---- webmention sources ----------------------------------------------------------------------


@pytest.mark.category("fetch")
@pytest.mark.parametrize(
    "path",
    ["/posts/quick-note/", "/posts/quick-note/?utm=1", "/", "/tags/indieweb/", "/ap/actor.json"],
)
async def test_our_own_pages_are_not_sources(wm: Context, path: str) -> None:
    source = wm.config.base_url + path
    target = wm.config.post_url(POST_SLUG)
    reason, _ = webmentions.validate(wm, source, target)
    assert reason is not None and "this site" in reason
    assert "this site" in await webmentions.verify(wm, source, target)
    assert all(c.source != source for _, c in wm.comments.iter_all())


@pytest.mark.category("fetch")
async def test_query_string_variants_of_one_page_make_one_comment(
    wm: Context, web: WebServer
) -> None:
    target = wm.config.post_url(POST_SLUG)
    web.route("/p", body=reply_page(target))  # the server ignores the query string
    sources = [web.url("/p", host="public.test") + f"?v={i}" for i in range(10)]
    reasons = [await webmentions.verify(wm, source, target) for source in sources]
    assert reasons[0] == ""
    assert all("query-string variant" in r for r in reasons[1:])
    mine = [c for _, c in wm.comments.iter_all() if c.protocol == "webmention"]
    assert [c.source for c in mine] == [sources[0]]


@pytest.mark.category("fetch")
async def test_distinct_pages_behind_one_path_are_kept(wm: Context, web: WebServer) -> None:
    """``index.php?p=1`` and ``?p=2`` are two posts: different words, two comments."""
    target = wm.config.post_url(POST_SLUG)

    def by_query(ex: Exchange) -> None:
        words = f"post {ex.request.query}"
        ex.send(200, {"Content-Type": "text/html"}, reply_page(target, words).encode())

    web.route("/index.php", handler=by_query)
    for p in (1, 2):
        source = web.url("/index.php", host="public.test") + f"?p={p}"
        assert await webmentions.verify(wm, source, target) == ""
    assert len([c for _, c in wm.comments.iter_all() if c.protocol == "webmention"]) == 2


# ---- Salmention amplification ----------------------------------------------------------------


@pytest.mark.category("load")
async def test_thirty_edits_of_one_reply_make_two_salmention_rounds(
    inbox: InboxHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[str] = []

    async def count(ctx: Context, slug: str) -> list[object]:
        rounds.append(slug)
        return []

    monkeypatch.setattr(salmention, "salmention", count)
    page = inbox.config.output_dir / "posts" / POST_SLUG / "index.html"
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, content="<p>v0</p>")
    assert (await inbox.post(create(ALICE, obj))).status_code == 202
    await inbox.process()
    for n in range(1, 31):
        edited = dict(obj, content=f"<p>v{n}</p>")
        update = {"id": f"{ALICE}/update/{n}", "type": "Update", "actor": ALICE, "object": edited}
        assert (await inbox.post(update)).status_code == 202
        await inbox.process()
        rebuilt = time.time() + 1  # the daemon rebuilt the page (past coarse mtime clocks)
        os.utime(page, (rebuilt, rebuilt))
        await salmention.run_due_salmentions(inbox.ctx)
    assert rounds == [POST_SLUG]  # the first change went out; the other 29 wait as one
    assert set(salmention.read_queue(inbox.db)) == {POST_SLUG}
    await salmention.run_due_salmentions(inbox.ctx, interval=0)  # the interval is over
    assert rounds == [POST_SLUG, POST_SLUG]
    assert salmention.read_queue(inbox.db) == {}


# ---- approval and edits ----------------------------------------------------------------------


@pytest.fixture
async def manual(
    make_site: Callable[..., Path], remote_keys: dict[str, rsa.RSAPrivateKey]
) -> AsyncIterator[InboxHarness]:
    site = make_site({"allow_private_addresses": True, "comments_policy": "manual"})
    h = InboxHarness(site, remote_keys)
    yield h
    await h.close()


@pytest.mark.category("render")
async def test_edited_reply_loses_its_approval_under_manual_policy(manual: InboxHarness) -> None:
    obj = note(ALICE + "/notes/1", in_reply_to=manual.post_url, content="<p>harmless</p>")
    assert (await manual.post(create(ALICE, obj))).status_code == 202
    await manual.process()
    [cid] = manual.comments()
    assert manual.comments()[cid].status == "pending"
    moderation.approve(manual.ctx, cid)
    redelivered = {"id": ALICE + "/update/0", "type": "Update", "actor": ALICE, "object": obj}
    assert (await manual.post(redelivered)).status_code == 202
    await manual.process()
    assert manual.comments()[cid].status == "approved"  # same words: still approved
    edited = dict(obj, content="<p>buy cheap pills</p>")
    update = {"id": ALICE + "/update/1", "type": "Update", "actor": ALICE, "object": edited}
    assert (await manual.post(update)).status_code == 202
    await manual.process()
    assert manual.comments()[cid].status == "pending"
    site_mod.build(manual.config)
    page = (manual.config.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")
    assert "pills" not in page and "harmless" not in page


@pytest.mark.category("render")
async def test_edited_webmention_loses_its_approval_under_manual_policy(
    make_site: Callable[..., Path], spy: SpyBackend, web: WebServer
) -> None:
    from bridge import config as config_mod

    site = make_site({"allow_private_addresses": False, "comments_policy": "manual"})
    config = config_mod.load(site)
    site_mod.build(config)
    ctx = context_with_fetcher(config, guarded_fetcher(spy))
    try:
        target = ctx.config.post_url(POST_SLUG)
        source = web.url("/r", host="public.test")
        web.route("/r", body=reply_page(target, "harmless"))
        assert await webmentions.verify(ctx, source, target) == ""
        [comment] = [c for _, c in ctx.comments.iter_all() if c.protocol == "webmention"]
        moderation.approve(ctx, comment.id)
        assert await webmentions.verify(ctx, source, target) == ""  # re-sent, unchanged
        assert ctx.comments.get(comment.id)[1].status == "approved"  # type: ignore[index]
        web.route("/r", body=reply_page(target, "buy cheap pills"))
        started = time.monotonic()
        assert await webmentions.verify(ctx, source, target) == ""
        assert time.monotonic() - started < 10
        assert ctx.comments.get(comment.id)[1].status == "pending"  # type: ignore[index]
    finally:
        await ctx.fetcher.aclose()
        ctx.db.close()
