"""``conversations backfill POST``: replies to the replies we hold, found through their
``replies`` collections on a real loopback server (Mastodon's shape: a ``Collection``
whose ``first`` page is embedded and whose ``next`` pages are fetched), and a hostile
server (loops, huge pages, foreign-origin items, slow pages) (``bridge.conversations.backfill``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.conversations import backfill
from bridge.db import Database
from bridge.federation import followers
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - `web` fixture

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = AS + "#Public"
SLUG = "first-article"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_folder(make_site: Callable[..., Path], **overrides: Any) -> Path:
    folder = make_site({"allow_private_addresses": True, **overrides})
    shutil.rmtree(folder / "content" / "comments")
    site_mod.build(config_mod.load(folder))
    return folder


@pytest.fixture
async def make_ctx(make_site: Callable[..., Path]) -> AsyncIterator[Callable[..., Context]]:
    made: list[Context] = []

    def make(**overrides: Any) -> Context:
        config = config_mod.load(make_folder(make_site, **overrides))
        ctx = make_context(config, Database(config.db_path), load_keys(config.state_dir))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.fetcher.aclose()
        ctx.db.close()


def actor(web: WebServer, name: str, host: str | None = None) -> str:
    actor_id = web.url(f"/users/{name}", host)
    doc = {
        "@context": AS,
        "id": actor_id,
        "type": "Person",
        "preferredUsername": name,
        "name": name.title(),
        "inbox": actor_id + "/inbox",
    }
    web.route(f"/users/{name}", content_type=AP, body=json.dumps(doc))
    return actor_id


def note(
    web: WebServer,
    author: str,
    n: int,
    in_reply_to: str,
    *,
    replies: Any = None,
    host: str | None = None,
    text: str = "",
) -> dict[str, Any]:
    """A public Mastodon-shaped Note at /users/<author>/statuses/<n>, served and returned."""
    obj_id = web.url(f"/users/{author}/statuses/{n}", host)
    doc: dict[str, Any] = {
        "@context": AS,
        "id": obj_id,
        "type": "Note",
        "attributedTo": web.url(f"/users/{author}", host),
        "inReplyTo": in_reply_to,
        "published": f"2026-03-0{n}T10:00:00Z",
        "to": [PUBLIC],
        "content": f"<p>{text or f'reply {n} by {author}'}</p>",
    }
    if replies is not None:
        doc["replies"] = replies
    web.route(f"/users/{author}/statuses/{n}", content_type=AP, body=json.dumps(doc))
    return doc


def replies_of(web: WebServer, path: str, pages: list[list[Any]]) -> str:
    """Mastodon's replies shape: a Collection with its first page embedded and the
    following pages (``next``) served at ``path/page<n>``; returns the collection id."""
    coll_id = web.url(path)
    ids = [web.url(f"{path}/page{n}") for n in range(1, len(pages) + 1)]
    for n, items in enumerate(pages):
        page: dict[str, Any] = {
            "@context": AS,
            "id": ids[n],
            "type": "CollectionPage",
            "partOf": coll_id,
            "items": items,
        }
        if n + 1 < len(pages):
            page["next"] = ids[n + 1]
        web.route(f"{path}/page{n + 1}", content_type=AP, body=json.dumps(page))
    first = json.loads(web.routes[f"{path}/page1"].body)
    first.pop("@context")
    coll = {"@context": AS, "id": coll_id, "type": "Collection", "first": first}
    web.route(path, content_type=AP, body=json.dumps(coll))
    return coll_id


def hold_reply(ctx: Context, doc: dict[str, Any]) -> None:
    """A fediverse reply we already show under the post (as the inbox stored it)."""
    ctx.comments.write(
        SLUG,
        Comment(
            id=comment_id("activitypub", doc["id"]),
            type="reply",
            protocol="activitypub",
            source=doc["id"],
            target=ctx.config.post_url(SLUG),
            author=CommentAuthor(name="Carol", url=doc["attributedTo"], photo=""),
            content="<p>held</p>",
            published=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
            object_id=doc["id"],
            actor_id=doc["attributedTo"],
        ),
    )


def thread(web: WebServer) -> dict[str, dict[str, Any]]:
    """carol/1 (held) <- dave/2 <- erin/3; dave/4 replies to carol/1 too (embedded)."""
    for name in ("carol", "dave", "erin"):
        actor(web, name)
    c1 = web.url("/users/carol/statuses/1")
    d2 = web.url("/users/dave/statuses/2")
    erin = note(web, "erin", 3, d2)
    dave = note(
        web,
        "dave",
        2,
        c1,
        replies=replies_of(web, "/users/dave/statuses/2/replies", [[erin["id"]]]),
    )
    dave4 = note(web, "dave", 4, c1)
    carol = note(
        web,
        "carol",
        1,
        "https://blog.example/posts/first-article/",
        replies=replies_of(web, "/users/carol/statuses/1/replies", [[], [dave["id"], dave4]]),
    )
    return {"carol": carol, "dave": dave, "erin": erin, "dave4": dave4}


def stored(ctx: Context) -> dict[str, Comment]:
    return {c.object_id: c for s, c in ctx.comments.iter_all() if s == SLUG}


async def test_replies_to_replies_are_stored_nested(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    docs = thread(web)
    hold_reply(ctx, docs["carol"])
    dirty: list[str] = []
    ctx.mark_dirty = dirty.append
    report = await backfill.backfill(ctx, SLUG)
    assert (report.walked, report.stored, report.stopped) == (2, 3, "")  # erin, dave4: none
    found = stored(ctx)
    assert found[docs["dave"]["id"]].in_reply_to == docs["carol"]["id"]
    assert found[docs["erin"]["id"]].in_reply_to == docs["dave"]["id"]
    assert found[docs["dave4"]["id"]].content == "<p>reply 4 by dave</p>"
    assert found[docs["erin"]["id"]].status == "approved"  # comments_policy = "open"
    assert SLUG in dirty
    # Signed GETs (the servers may run in secure mode).
    assert all("signature" in r.headers for r in web.requests_to("/users/dave/statuses/2/replies"))
    # Again: nothing new, nothing stored twice.
    again = await backfill.backfill(ctx, SLUG)
    assert again.stored == 0 and len(stored(ctx)) == 4
    assert "stored 0 new comments" in again.summary()


async def test_depth_and_policy_are_respected(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx(comments_policy="manual")
    docs = thread(web)
    hold_reply(ctx, docs["carol"])
    report = await backfill.backfill(ctx, SLUG, backfill.Limits(max_depth=1))
    found = stored(ctx)
    assert docs["erin"]["id"] not in found  # two levels down: beyond max_depth=1
    assert found[docs["dave"]["id"]].status == "pending"  # manual policy
    assert report.walked == 1
    assert web.requests_to("/users/dave/statuses/2/replies") == []


async def test_blocked_authors_and_domains_are_kept_out(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    docs = thread(web)
    actor(web, "mallory", host="localhost")
    c1 = docs["carol"]["id"]
    mallory = note(web, "mallory", 5, c1, host="localhost")
    coll = replies_of(
        web, "/users/carol/statuses/1/replies", [[], [docs["dave"]["id"], mallory["id"]]]
    )
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    followers.block(ctx.db, docs["dave"]["attributedTo"])  # an account
    followers.block(ctx.db, "localhost")  # a domain: nothing is even fetched from it
    report = await backfill.backfill(ctx, SLUG)
    assert set(stored(ctx)) == {c1}
    assert web.requests_to("/users/mallory/statuses/5") == []
    assert web.requests_to("/users/dave/statuses/2/replies") == []  # never walked
    assert report.stored == 0 and report.dropped == 2


async def test_a_looping_collection_is_read_once(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    actor(web, "carol")
    actor(web, "dave")
    c1 = web.url("/users/carol/statuses/1")
    dave = note(web, "dave", 2, c1)
    coll = replies_of(web, "/users/carol/statuses/1/replies", [[dave["id"]], [dave["id"]]])
    # page2 points back to page1, and page1 to page2: a cycle.
    page2 = json.loads(web.routes["/users/carol/statuses/1/replies/page2"].body)
    page2["next"] = web.url("/users/carol/statuses/1/replies/page1")
    web.route("/users/carol/statuses/1/replies/page2", content_type=AP, body=json.dumps(page2))
    web.route(
        "/users/carol/statuses/1/replies/page1",
        content_type=AP,
        body=json.dumps(
            json.loads(
                json.dumps(
                    {
                        **page2,
                        "id": web.url("/users/carol/statuses/1/replies/page1"),
                        "next": page2["id"],
                    }
                )
            )
        ),
    )
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    report = await backfill.backfill(ctx, SLUG, backfill.Limits(max_pages=50))
    assert report.stored == 1 and report.stopped == ""
    assert len(web.requests_to("/users/carol/statuses/1/replies/page2")) == 1
    assert len(web.requests_to("/users/carol/statuses/1/replies/page1")) <= 1


async def test_a_huge_page_is_cut_and_the_item_budget_holds(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    actor(web, "carol")
    c1 = web.url("/users/carol/statuses/1")
    items = [web.url(f"/users/x/statuses/{n}") for n in range(5000)]  # all 404
    coll = replies_of(web, "/users/carol/statuses/1/replies", [[], items])
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    limits = backfill.Limits(max_items=7, max_page_items=1000)
    report = await backfill.backfill(ctx, SLUG, limits)
    assert report.fetched == 7 and report.stopped == "7 objects fetched"
    fetched = [r for r in web.requests if r.path.startswith("/users/x/statuses/")]
    assert len(fetched) == 7  # then the walk stops: the other 4993 are never requested
    assert c1 in {d for d in stored(ctx)}


async def test_a_foreign_origin_item_is_fetched_from_its_origin_or_dropped(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    actor(web, "carol")
    actor(web, "mallory", host="localhost")
    c1 = web.url("/users/carol/statuses/1")
    real = note(web, "mallory", 2, c1, host="localhost", text="what mallory wrote")
    forged = {**real, "content": "<p>words put in mallory's mouth</p>"}
    gone = {**real, "id": web.url("/users/mallory/statuses/9", "localhost")}
    coll = replies_of(web, "/users/carol/statuses/1/replies", [[], [forged, gone]])
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    report = await backfill.backfill(ctx, SLUG)
    found = stored(ctx)
    assert found[real["id"]].content == "<p>what mallory wrote</p>"  # the origin's copy
    assert gone["id"] not in found  # 404 at its origin: dropped
    assert report.stored == 1 and report.dropped == 1


async def test_a_collection_on_another_origin_is_not_read(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    actor(web, "carol")
    coll = web.url("/elsewhere/replies", "localhost")
    web.route("/elsewhere/replies", content_type=AP, body=json.dumps({"id": coll, "items": []}))
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    report = await backfill.backfill(ctx, SLUG)
    assert web.requests_to("/elsewhere/replies") == []
    assert report.walked == 1 and report.fetched == 0


async def test_the_time_budget_stops_a_slow_server(
    make_ctx: Callable[..., Context], web: WebServer
) -> None:
    ctx = make_ctx()
    actor(web, "carol")

    def drip(ex: Exchange) -> None:
        ex.start(200, {"Content-Type": AP})
        while ex.write(b" ") and ex.sleep(0.05):
            pass

    web.route("/users/carol/statuses/1/replies", handler=drip)
    coll = web.url("/users/carol/statuses/1/replies")
    hold_reply(
        ctx, note(web, "carol", 1, "https://blog.example/posts/first-article/", replies=coll)
    )
    report = await backfill.backfill(ctx, SLUG, backfill.Limits(seconds=0.5))
    assert report.stopped == "time budget of 0.5 s"


def test_the_command_prints_one_line(make_site: Callable[..., Path], web: WebServer) -> None:
    folder = make_folder(make_site)
    config = config_mod.load(folder)
    db = Database(config.db_path)
    ctx = make_context(config, db, load_keys(config.state_dir))
    docs = thread(web)
    hold_reply(ctx, docs["carol"])
    db.close()
    runner = CliRunner()
    result = runner.invoke(main, ["conversations", "backfill", SLUG, "--site", str(folder)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"Backfill of {SLUG}: read the replies of 2 comments")
    assert "stored 3 new comments" in first
    assert len(result.output.splitlines()) == 1
    bad = runner.invoke(main, ["conversations", "backfill", "no-such-post", "--site", str(folder)])
    assert bad.exit_code != 0
    assert bad.output.strip().splitlines()[-1] == (
        "Error: no-such-post: not a built post of this site (give its slug or URL; build first)"
    )
