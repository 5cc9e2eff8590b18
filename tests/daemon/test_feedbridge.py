"""Bridge mode against a feed served on loopback: new, edited and dropped entries become
Create, Update and Delete; polling is conditional and backs off on errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge import config as config_mod
from bridge import keys
from bridge.daemon import feedbridge
from bridge.db import Database
from bridge.federation import followers, outbox
from bridge.federation.context import Context, make_context
from bridge.site import build as site_mod
from bridge.site import content, proofs
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - `web` fixture

pytestmark = pytest.mark.anyio
UTC = dt.UTC
FOLLOWER_INBOX = "https://peer.example/inbox"
# Entries are dated relative to today, so the backfill horizon (bridge_site: 60 days) holds.
DAY0 = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
    days=30
)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n, hours=9)


@dataclass
class Entry:
    slug: str
    title: str
    day: int
    body: str
    date: dt.datetime | None = None  # else day(self.day)

    def item(self, base: str) -> str:
        date = self.date or day(self.day)
        return (
            f"<item><title>{html.escape(self.title)}</title>"
            f"<link>{base}/blog/{self.slug}/</link><guid>{base}/blog/{self.slug}/</guid>"
            f"<pubDate>{date:%a, %d %b %Y %H:%M:%S} +0000</pubDate>"
            f"<category>bridged</category>"
            f"<description>{html.escape(self.body)}</description></item>"
        )


class FeedHost:
    """An RSS feed on the loopback server whose entries a test changes; it answers 304 to
    a matching If-None-Match, as a polite server does."""

    def __init__(self, web: WebServer, path: str = "/feed.xml") -> None:
        self.web = web
        self.path = path
        self.entries: list[Entry] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        web.route(path, handler=self.handle)

    @property
    def url(self) -> str:
        return self.web.url(self.path)

    def body(self) -> bytes:
        base = self.web.url("").rstrip("/")
        items = "".join(e.item(base) for e in sorted(self.entries, key=lambda e: -e.day))
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Elsewhere</title>'
            f"<link>{base}/blog/</link>{items}</channel></rss>"
        ).encode()

    def handle(self, ex: Exchange) -> None:
        if self.status != 200:
            ex.send(self.status, {"Content-Type": "text/plain", **self.headers}, b"down")
            return
        body = self.body()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if ex.request.headers.get("if-none-match") == etag:
            ex.send(304, {"ETag": etag})
            return
        ex.send(200, {"Content-Type": "application/rss+xml", "ETag": etag}, body)


def bridge_site(make_site: Callable[..., Path], url: str, **overrides: Any) -> Path:
    settings: dict[str, Any] = {
        "allow_private_addresses": True,
        "federate_since": dt.datetime(2000, 1, 1, tzinfo=UTC),
        "bridge": {"feeds": [{"url": url, "interval": 60, "backfill_days": 60}]},
    }
    settings.update(overrides)
    return make_site(settings)


@pytest.fixture
async def context_for() -> AsyncIterator[Callable[[Path], Context]]:
    made: list[Context] = []

    def make(folder: Path) -> Context:
        config = config_mod.load(folder)
        ctx = make_context(config, Database(config.db_path), keys.load(config.state_dir))
        followers.upsert(
            ctx.db,
            actor="https://peer.example/users/alice",
            inbox="https://peer.example/users/alice/inbox",
            shared_inbox=FOLLOWER_INBOX,
            follow_id="https://peer.example/follows/1",
            handle="@alice@peer.example",
            state="accepted",
        )
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.fetcher.aclose()
        ctx.db.close()


def queued(ctx: Context) -> list[dict[str, Any]]:
    """Activities queued for the follower, oldest first."""
    rows = ctx.db.query(
        "SELECT o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
        "WHERE d.inbox = ? ORDER BY d.id",
        (FOLLOWER_INBOX,),
    )
    return [json.loads(r["body"]) for r in rows]


async def get(ctx: Context, path: str) -> httpx.Response:
    app = Starlette(routes=feedbridge.routes(ctx))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://blog.example"
    ) as client:
        return await client.get(path)


async def test_created_updated_and_deleted_entries_reach_followers(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.entries = [
        Entry("alpha", "Alpha & Omega", 1, "<p>First.</p>"),
        Entry("beta", "Beta", 2, "<p>Second, with <a href='/blog/alpha/'>a link</a>.</p>"),
        Entry("gamma", "Gamma", 3, "<p>Third.</p>"),
    ]
    ctx = context_for(bridge_site(make_site, feed.url))
    report = await feedbridge.poll_once(ctx)
    assert report.errors == []
    assert report.created == ["alpha-omega", "beta", "gamma"]  # oldest first
    creates = queued(ctx)
    assert [a["type"] for a in creates] == ["Create"] * 3
    alpha = creates[0]["object"]
    assert alpha["id"] == "https://blog.example/ap/bridge/alpha-omega.json"
    assert alpha["url"] == web.url("/blog/alpha/")  # readers go to the original blog
    assert alpha["type"] == "Article" and alpha["name"] == "Alpha & Omega"
    assert alpha["attributedTo"] == ctx.config.actor_id
    assert alpha["tag"] == [{"type": "Hashtag", "name": "#bridged"}]  # no page of ours
    assert "replies" not in alpha
    assert web.url("/blog/alpha/") in creates[1]["object"]["content"]  # resolved link
    public = ctx.keys.ed25519.public_key()
    for activity in creates:
        proofs.verify_object(activity, public)
        proofs.verify_object(activity["object"], public)
    served = await get(ctx, "/ap/bridge/alpha-omega.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/activity+json"
    assert served.json() == alpha
    assert (await get(ctx, "/ap/bridge/alpha-omega/create.json")).json()["id"] == creates[0]["id"]

    # Unchanged: a conditional GET, a 304, nothing queued.
    again = await feedbridge.poll_once(ctx)
    assert again.feeds[0].status == "not-modified"
    assert web.requests_to("/feed.xml")[-1].headers["if-none-match"].startswith('"')
    assert len(queued(ctx)) == 3

    # Beta edited, gamma (the newest) dropped, delta added.
    feed.entries = [
        Entry("alpha", "Alpha & Omega", 1, "<p>First.</p>"),
        Entry("beta", "Beta", 2, "<p>Second, now edited.</p>"),
        Entry("delta", "Delta", 4, "<p>Fourth.</p>"),
    ]
    report = await feedbridge.poll_once(ctx)
    assert (report.created, report.updated, report.deleted) == (["delta"], ["beta"], ["gamma"])
    update, create, delete = queued(ctx)[3:]
    assert update["type"] == "Update" and "now edited" in update["object"]["content"]
    assert update["object"]["updated"] and update["id"] != creates[1]["id"]
    assert create["type"] == "Create" and create["object"]["name"] == "Delta"
    assert delete["type"] == "Delete"
    assert delete["object"] == {
        "id": "https://blog.example/ap/bridge/gamma.json",
        "type": "Tombstone",
    }
    gone = await get(ctx, "/ap/bridge/gamma.json")
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"
    assert (await get(ctx, "/ap/bridge/beta.json")).json() == update["object"]
    assert (await get(ctx, "/ap/bridge/nothing.json")).status_code == 404

    # Alpha slides out of the window (older than anything left): not a deletion.
    feed.entries = [
        Entry("beta", "Beta", 2, "<p>Second, now edited.</p>"),
        Entry("delta", "Delta", 4, "<p>Fourth.</p>"),
        Entry("epsilon", "Epsilon", 5, "<p>Fifth.</p>"),
    ]
    report = await feedbridge.poll_once(ctx)
    assert (report.created, report.updated, report.deleted) == (["epsilon"], [], [])
    assert (await get(ctx, "/ap/bridge/alpha-omega.json")).status_code == 200

    # An empty feed deletes nothing.
    feed.entries = []
    report = await feedbridge.poll_once(ctx)
    assert report.deleted == [] and report.errors == []

    # Gamma comes back: announced again under a new id; the old id stays gone.
    feed.entries = [Entry("gamma", "Gamma", 3, "<p>Third, restored.</p>")]
    report = await feedbridge.poll_once(ctx)
    assert report.created == ["gamma-2"]
    assert (await get(ctx, "/ap/bridge/gamma.json")).status_code == 410


async def test_entries_before_federate_since_are_served_but_not_announced(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.entries = [Entry("old", "Old", 1, "<p>Old.</p>"), Entry("new", "New", 20, "<p>New.</p>")]
    folder = bridge_site(make_site, feed.url, federate_since=day(10) - dt.timedelta(hours=9))
    ctx = context_for(folder)
    report = await feedbridge.poll_once(ctx)
    assert (report.recorded, report.created) == (["old"], ["new"])
    assert [a["object"]["name"] for a in queued(ctx)] == ["New"]
    assert (await get(ctx, "/ap/bridge/old.json")).status_code == 200
    assert (await get(ctx, "/ap/bridge/old/create.json")).status_code == 404

    # An edit of a never-announced entry is recorded, not sent; its removal sends nothing.
    feed.entries = [Entry("old", "Old", 1, "<p>Old, edited.</p>")]
    report = await feedbridge.poll_once(ctx)
    assert report.recorded == ["old"] and report.updated == []
    assert report.deleted == ["new"]
    assert [a["type"] for a in queued(ctx)] == ["Create", "Delete"]


async def test_errors_back_off_and_a_success_resets(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.status = 500
    ctx = context_for(bridge_site(make_site, feed.url))
    bridged = ctx.config.bridge_feeds[0]
    first = await feedbridge.poll_feed(ctx, bridged, now=1000.0)
    assert first.status == "error" and first.error == "HTTP 500"
    assert first.next_poll == 1000.0 + 120
    second = await feedbridge.poll_feed(ctx, bridged, now=2000.0)
    assert second.next_poll == 2000.0 + 240
    feed.status, feed.headers = 503, {"Retry-After": "3600"}
    third = await feedbridge.poll_feed(ctx, bridged, now=3000.0)
    assert third.next_poll == 3000.0 + 3600

    feed.status = 200
    feed.entries = [Entry("one", "One", 1, "<p>1</p>")]
    ok = await feedbridge.poll_feed(ctx, bridged, now=4000.0)
    assert ok.status == "updated" and ok.created == ["one"]
    assert ok.next_poll == 4000.0 + 60
    row = ctx.db.one("SELECT failures, last_error FROM bridge_feeds")
    assert row is not None and (row["failures"], row["last_error"]) == (0, "")

    web.route("/not-a-feed", body="<html><p>hello</p></html>")
    bad = config_mod.BridgeFeed(url=web.url("/not-a-feed"), interval=60)
    report = await feedbridge.poll_feed(ctx, bad, now=5000.0)
    assert report.status == "error" and "not an RSS or Atom feed" in report.error


def test_backoff_doubles_up_to_a_day() -> None:
    assert [feedbridge.backoff(900, n) for n in (1, 2, 3)] == [1800, 3600, 7200]
    assert feedbridge.backoff(900, 50) == 24 * 3600
    assert feedbridge.backoff(200_000, 3) == 200_000  # never less often than asked


async def test_private_addresses_are_refused_unless_allowed(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.entries = [Entry("one", "One", 1, "<p>1</p>")]
    ctx = context_for(bridge_site(make_site, feed.url, allow_private_addresses=False))
    report = await feedbridge.poll_once(ctx)
    assert report.feeds[0].status == "error" and "127.0.0.1" in report.feeds[0].error
    assert web.requests_to("/feed.xml") == []
    assert report.created == []


async def test_the_bridge_and_local_publishing_leave_each_other_alone(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.entries = [Entry("one", "One", 1, "<p>1</p>")]
    folder = bridge_site(make_site, feed.url)
    ctx = context_for(folder)
    assert (await feedbridge.poll_once(ctx)).created == ["one"]

    site_mod.build(ctx.config)
    posts, _ = content.load(ctx.config)
    published = await outbox.publish(ctx, posts)
    assert published.deleted == [] and "one" not in published.created
    assert (await get(ctx, "/ap/bridge/one.json")).status_code == 200
    again = await feedbridge.poll_once(ctx)
    assert again.deleted == [] and again.created == []


async def test_run_feed_bridge_polls_when_due_and_stops(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    feed.entries = [Entry("one", "One", 1, "<p>1</p>")]
    folder = bridge_site(make_site, feed.url, bridge={"feeds": [{"url": feed.url, "interval": 1}]})
    ctx = context_for(folder)
    stop = asyncio.Event()
    task = asyncio.create_task(feedbridge.run_feed_bridge(ctx, stop))
    await asyncio.sleep(2.5)
    assert 2 <= len(web.requests_to("/feed.xml")) <= 4
    assert [a["type"] for a in queued(ctx)] == ["Create"]
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_webmentions_go_to_the_links_of_new_entries(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    feed = FeedHost(web)
    web.route("/target", body="<p>A page</p>", headers={"Link": '</wm>; rel="webmention"'})
    web.route("/wm", status=202, body="")
    feed.entries = [
        Entry("one", "One", 1, f"<p>About <a href='{web.url('/target')}'>that page</a>.</p>")
    ]
    ctx = context_for(bridge_site(make_site, feed.url))
    report = await feedbridge.poll_once(ctx)
    assert report.created == ["one"]
    sent = web.requests_to("/wm")
    assert len(sent) == 1
    assert sent[0].form == {"source": [web.url("/blog/one/")], "target": [web.url("/target")]}


async def test_an_entry_first_seen_after_the_first_poll_goes_out_whatever_its_date(
    make_site: Callable[..., Path],
    web: WebServer,
    context_for: Callable[[Path], Context],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pelican dates posts to the minute (``DEFAULT_DATE_FORMAT``; its feeds write
    ``date`` without seconds), so a post written one minute after bridging started can be
    dated before ``federate_since``; it must still arrive.  Only the first poll is a
    backfill, and later entries older than ``backfill_days`` stay unannounced."""
    feed = FeedHost(web)
    feed.entries = [Entry("archive", "Archive", 1, "<p>Old.</p>")]
    folder = bridge_site(
        make_site,
        feed.url,
        federate_since=None,  # the moment of the first poll, stored
        bridge={"feeds": [{"url": feed.url, "interval": 60, "backfill_days": 7}]},
    )
    ctx = context_for(folder)
    caplog.set_level("INFO", logger="indiebridge.bridge")
    first = await feedbridge.poll_once(ctx)
    assert (first.recorded, first.created) == (["archive"], [])
    since = outbox.federate_since(ctx)
    assert [r.getMessage() for r in caplog.records if "not announced" in r.getMessage()] == [
        f"bridge: {feed.url}: {web.url('/blog/archive/')}: not announced: dated "
        f"{day(1):%Y-%m-%dT%H:%M:%SZ}, before federate_since "
        f"{since:%Y-%m-%dT%H:%M:%SZ}, on the feed's first poll (backfill); "
        "recorded and served only"
    ]
    caplog.clear()

    # Written in the minute bridging started: dated (to the minute) before federate_since.
    minute = since.replace(second=0, microsecond=0) - dt.timedelta(seconds=1)
    assert minute < since
    feed.entries += [
        Entry("just-now", "Just now", 40, "<p>New.</p>", date=minute.replace(second=0)),
        Entry("backdated", "Backdated", 41, "<p>Late.</p>", date=since - dt.timedelta(days=6)),
        Entry("too-old", "Too old", 42, "<p>Found.</p>", date=since - dt.timedelta(days=8)),
    ]
    second = await feedbridge.poll_once(ctx)
    assert sorted(second.created) == ["backdated", "just-now"]
    assert second.recorded == ["too-old"]
    assert sorted(a["object"]["name"] for a in queued(ctx)) == ["Backdated", "Just now"]
    lines = [r.getMessage() for r in caplog.records if "not announced" in r.getMessage()]
    assert len(lines) == 1 and web.url("/blog/too-old/") in lines[0]
    assert "older than the backfill horizon (backfill_days = 7)" in lines[0]


async def test_every_entry_not_announced_gets_a_log_line(
    make_site: Callable[..., Path],
    web: WebServer,
    context_for: Callable[[Path], Context],
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = FeedHost(web)
    feed.entries = [
        Entry("old", "Old", 1, "<p>Old.</p>"),
        Entry("gone", "Gone", 2, "<p>Gone.</p>"),
        Entry("twin", "Twin", 12, "<p>A</p>"),
    ]
    folder = bridge_site(make_site, feed.url, federate_since=day(10) - dt.timedelta(hours=9))
    ctx = context_for(folder)
    caplog.set_level("INFO", logger="indiebridge.bridge")
    first = await feedbridge.poll_once(ctx)
    assert (first.recorded, first.created) == (["old", "gone"], ["twin"])
    feed.entries = [
        Entry("old", "Old", 1, "<p>Old, edited.</p>"),
        Entry("twin", "Twin", 12, "<p>A</p>"),
        Entry("twin", "Twin again", 12, "<p>B</p>"),  # the same guid twice
    ]
    report = await feedbridge.poll_once(ctx)
    assert (report.recorded, report.deleted) == (["old"], ["gone"])
    assert [a["type"] for a in queued(ctx)] == ["Create"]
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bridge: ")]
    old, gone, twin = (web.url(f"/blog/{s}/") for s in ("old", "gone", "twin"))
    head = f"bridge: {feed.url}: "
    assert messages == [
        f"{head}{old}: not announced: dated {day(1):%Y-%m-%dT%H:%M:%SZ}, before federate_since "
        f"{day(10) - dt.timedelta(hours=9):%Y-%m-%dT%H:%M:%SZ}, on the feed's first poll "
        "(backfill); recorded and served only",
        f"{head}{gone}: not announced: dated {day(2):%Y-%m-%dT%H:%M:%SZ}, before federate_since "
        f"{day(10) - dt.timedelta(hours=9):%Y-%m-%dT%H:%M:%SZ}, on the feed's first poll "
        "(backfill); recorded and served only",
        f"{head}{old}: not announced: changed, but it was never announced; recorded only",
        f"{head}{twin}: not announced: it appears twice in the feed; the first one counts",
        f"{head}{gone}: removed from the feed; never announced, so no Delete",
    ]


def test_backfill_days_is_a_positive_integer(make_site: Callable[..., Path]) -> None:
    url = "https://old.example/feed.xml"
    folder = make_site({"bridge": {"feeds": [{"url": url}]}})
    assert config_mod.load(folder).bridge_feeds[0].backfill_days == 7
    bad = make_site({"bridge": {"feeds": [{"url": url, "backfill_days": 0}]}})
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(bad)
    assert (
        str(err.value)
        == "site.toml: key 'bridge.feeds[0].backfill_days' must be a positive integer"
    )
