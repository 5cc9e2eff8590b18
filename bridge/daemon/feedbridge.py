"""Bridge mode: follow an existing blog's feed and federate its entries.

For each ``[[bridge.feeds]]`` of site.toml the daemon polls the feed and turns its entries
into ``Post`` values, then into Articles (or Notes) whose ``url`` is the entry's link, so
fediverse readers land on the original blog, while the object ``id`` stays on this domain
(``/ap/bridge/<slug>.json``).  New entries go out as Create, changed ones as Update,
removed ones as Delete, built and signed exactly as ``outbox.publish`` does, and
webmentions go to the links of new or changed entries (from the entry's own page).

Where bridged entries live: in the database, not under ``content/``
------------------------------------------------------------------
* **The url.**  A post under ``content/`` is a page of this site, and its object's
  ``url`` is that page.  A bridged entry's page is on the original blog; a copy here would
  be a second, stale home for it.
* **publish() owns the ``published`` table.**  ``outbox.publish`` diffs that whole table
  against the posts it is given; bridged entries in it would be deleted by the next
  ``indiebridge publish`` of local posts (and local posts by a bridge poll).  The bridge
  keeps its own table, so the two coexist on one actor.
* **content/ stays the writer's.**  No generated files to commit by mistake, to
  overwrite after the writer edited them, or to delete when the feed drops an entry.

The objects are served by the daemon from this table (``routes(ctx)``): the signed object
while the entry is live, a 410 Tombstone after it was deleted, and its Create at
``/ap/bridge/<slug>/create.json``.  They are not in the static outbox.

Polling politely
----------------
Each feed is fetched with ``SafeFetcher`` (private addresses refused unless
``allow_private_addresses``) with ``If-None-Match`` / ``If-Modified-Since`` from the last
answer, stored in the ``bridge_feeds`` table, every ``interval`` seconds (default 900).
An error (network, HTTP status, not a feed) doubles the wait each time, up to a day,
and waits at least what a ``Retry-After`` asks; the next success resets it.

What counts as a removal
------------------------
Feeds are windows: most keep only the latest N entries, so an entry that slides off the
end was not deleted.  An entry missing from the feed is deleted only when it is newer
than the oldest entry the feed still carries; an empty feed deletes nothing (a broken
CMS template must not wipe an actor's posts).

Dates and the first poll
------------------------
Entries are dated by their ``published`` (else ``updated``) date; an entry without one is
dated by the moment it was first seen, which is stored, so it never changes.  Entries
older than ``federate_since`` (site.toml, or the moment of the first publish) are recorded
and served but never announced: turning the bridge on does not flood followers' timelines
with an archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nh3
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bridge.config import BridgeFeed, SiteConfig
from bridge.conversations.post_mentions import PostWebmentions
from bridge.db import Database
from bridge.errors import BridgeError
from bridge.federation import delivery, outbox
from bridge.federation.context import Context
from bridge.site import activities, importer, proofs
from bridge.site.posts import SLUG_RE, Post

log = logging.getLogger("indiebridge.bridge")

AP_JSON = "application/activity+json"
MAX_BACKOFF = 24 * 3600.0

SCHEMA = """
-- Bridge mode: one row per [[bridge.feeds]] URL, with the validators of its last answer.
CREATE TABLE IF NOT EXISTS bridge_feeds (
    url TEXT PRIMARY KEY,
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    next_poll REAL NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    last_polled REAL
);
-- One row per feed entry ever seen. state: live | deleted
CREATE TABLE IF NOT EXISTS bridge_entries (
    feed TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    link TEXT NOT NULL DEFAULT '',
    published REAL NOT NULL,
    digest TEXT NOT NULL,
    object TEXT NOT NULL,
    as_type TEXT NOT NULL,
    links TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'live',
    federated INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (feed, entry_key)
);
"""

_ready: weakref.WeakSet[Database] = weakref.WeakSet()
_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def ensure_schema(db: Database) -> None:
    """Create the bridge's tables if they are missing (once per Database)."""
    if db not in _ready:
        db.con.executescript(SCHEMA)
        _ready.add(db)


def _lock(db: Database) -> asyncio.Lock:
    lock = _locks.get(db)
    if lock is None:
        lock = _locks[db] = asyncio.Lock()
    return lock


# ---- reports ------------------------------------------------------------------------


@dataclass
class FeedReport:
    url: str
    status: str = "updated"  # updated | not-modified | error
    error: str = ""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # served, never announced
    queued: int = 0
    webmentions: list[Any] = field(default_factory=list)
    next_poll: float = 0.0


@dataclass
class BridgeReport:
    feeds: list[FeedReport] = field(default_factory=list)

    def _all(self, name: str) -> list[str]:
        return [slug for f in self.feeds for slug in getattr(f, name)]

    @property
    def created(self) -> list[str]:
        return self._all("created")

    @property
    def updated(self) -> list[str]:
        return self._all("updated")

    @property
    def deleted(self) -> list[str]:
        return self._all("deleted")

    @property
    def recorded(self) -> list[str]:
        return self._all("recorded")

    @property
    def errors(self) -> list[str]:
        return [f"{f.url}: {f.error}" for f in self.feeds if f.status == "error"]

    def summary(self) -> str:
        text = (
            f"{len(self.feeds)} feed(s): {len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted, {len(self.recorded)} recorded; "
            f"{sum(f.queued for f in self.feeds)} deliveries queued"
        )
        if self.errors:
            text += f"; {len(self.errors)} error(s)"
        return text


# ---- entries -> posts -> objects --------------------------------------------------------


def object_id(config: SiteConfig, slug: str) -> str:
    return f"{config.base_url}/ap/bridge/{slug}.json"


def entry_post(
    config: SiteConfig, feed_url: str, entry: importer.FeedEntry, slug: str, date: dt.datetime
) -> Post:
    """The ``Post`` value of a feed entry (its HTML sanitised; ``original_url`` its link)."""
    html = nh3.clean(entry.html).strip()
    updated = entry.updated if entry.updated and entry.updated > date else None
    digest = hashlib.sha256(
        json.dumps(
            [
                entry.title,
                entry.link,
                date.isoformat(),
                updated and updated.isoformat(),
                list(entry.tags),
                entry.summary,
                html,
            ],
        ).encode()
    ).hexdigest()
    return Post(
        source=feed_url,
        slug=slug,
        title=entry.title,
        date=date,
        updated=updated,
        tags=entry.tags,
        summary=entry.summary,
        draft=False,
        lang=config.language,
        content_warning=None,
        images=(),
        in_reply_to=None,
        fediverse_format=config.fediverse_format,
        body=html,
        html=html,
        digest=digest,
        extra={"original_url": entry.link} if entry.link else {},
    )


def bridged_object(config: SiteConfig, post: Post) -> dict[str, Any]:
    """``activities.post_object`` with our id, the entry's link as ``url`` and no
    replies/likes/shares collections (this site serves none for bridged entries)."""
    obj = activities.post_object(config, post)
    link = post.extra.get("original_url") or config.base_url + "/"
    own_page = config.post_url(post.slug)
    for key in ("content", "summary"):
        if isinstance(obj.get(key), str):
            obj[key] = obj[key].replace(own_page, link)
    obj["contentMap"] = {post.lang: obj["content"]}
    obj["id"] = object_id(config, post.slug)
    obj["url"] = link
    for key in ("replies", "likes", "shares"):
        obj.pop(key, None)
    return obj


def _sign(ctx: Context, obj: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    return proofs.sign_object(
        proofs.strip_proof(obj), ctx.keys.ed25519, ctx.config.ed25519_key_id, moment
    )


# ---- fetching -------------------------------------------------------------------------------


class _Conditional(httpx.Auth):
    """Adds the conditional-GET validators (SafeFetcher takes extra headers only this way;
    like credentials, they are dropped when a redirect leaves the feed's origin)."""

    def __init__(self, etag: str, last_modified: str) -> None:
        self.etag = etag
        self.last_modified = last_modified

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.etag:
            request.headers["If-None-Match"] = self.etag
        if self.last_modified:
            request.headers["If-Modified-Since"] = self.last_modified
        yield request


def _state(db: Database, url: str) -> dict[str, Any]:
    row = db.one("SELECT * FROM bridge_feeds WHERE url = ?", (url,))
    if row is None:
        with db.tx() as con:
            con.execute("INSERT OR IGNORE INTO bridge_feeds(url) VALUES (?)", (url,))
        row = db.one("SELECT * FROM bridge_feeds WHERE url = ?", (url,))
    assert row is not None
    return dict(row)


def backoff(interval: float, failures: int) -> float:
    """Seconds to wait after ``failures`` errors in a row: doubling, at most a day."""
    return float(min(interval * 2 ** min(failures, 20), max(MAX_BACKOFF, interval)))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def poll_feed(ctx: Context, feed: BridgeFeed, *, now: float | None = None) -> FeedReport:
    """Fetch one feed (conditionally) and federate what changed; never raises for the
    feed's own faults: they are in the report and schedule a backoff."""
    ensure_schema(ctx.db)
    async with _lock(ctx.db):
        return await _poll_feed(ctx, feed, time.time() if now is None else now)


async def _poll_feed(ctx: Context, feed: BridgeFeed, moment: float) -> FeedReport:
    db = ctx.db
    state = _state(db, feed.url)
    report = FeedReport(url=feed.url)
    status: int | None = None
    retry_after: float | None = None
    try:
        page = await ctx.fetcher.get(
            feed.url,
            accept=importer.FEED_ACCEPT,
            auth=_Conditional(state["etag"], state["last_modified"]),
        )
        status = page.status
        if page.status == 304:
            report.status = "not-modified"
        elif not page.ok:
            retry_after = delivery.parse_retry_after(page.headers.get("retry-after"), moment)
            raise BridgeError(f"HTTP {page.status}")
        else:
            parsed = importer.parse_feed(page.body, url=page.url)
            await _federate(ctx, feed.url, parsed, moment, report)
    except BridgeError as exc:
        failures = int(state["failures"]) + 1
        wait = max(backoff(feed.interval, failures), retry_after or 0.0)
        report.status, report.error = "error", _one_line(str(exc))
        report.next_poll = moment + wait
        log.warning("bridge: %s: %s (next try in %d s)", feed.url, report.error, wait)
        with db.tx() as con:
            con.execute(
                "UPDATE bridge_feeds SET failures = ?, next_poll = ?, last_status = ?, "
                "last_error = ?, last_polled = ? WHERE url = ?",
                (failures, report.next_poll, status, report.error, moment, feed.url),
            )
        return report
    report.next_poll = moment + feed.interval
    etag = state["etag"]
    modified = state["last_modified"]
    if report.status != "not-modified":
        etag = str(page.headers.get("etag") or "")
        modified = str(page.headers.get("last-modified") or "")
    with db.tx() as con:
        con.execute(
            "UPDATE bridge_feeds SET etag = ?, last_modified = ?, failures = 0, next_poll = ?, "
            "last_status = ?, last_error = '', last_polled = ? WHERE url = ?",
            (etag, modified, report.next_poll, status, moment, feed.url),
        )
    return report


def _unique_slug(db: Database, entry: importer.FeedEntry) -> str:
    taken = {str(r["slug"]) for r in db.query("SELECT slug FROM bridge_entries")}
    base = importer.slug_base(entry)
    if not SLUG_RE.match(base):
        base = "entry"
    return importer.unique_slug(base, taken)


async def _federate(
    ctx: Context, feed_url: str, parsed: importer.ParsedFeed, moment: float, report: FeedReport
) -> None:
    db, config = ctx.db, ctx.config
    rows = {
        str(r["entry_key"]): dict(r)
        for r in db.query("SELECT * FROM bridge_entries WHERE feed = ?", (feed_url,))
    }
    since = outbox.federate_since(ctx)
    now_dt = dt.datetime.fromtimestamp(int(moment), dt.UTC)
    inboxes = delivery.inboxes_for_followers(db)
    current: dict[str, float] = {}
    mentions = PostWebmentions(ctx)
    webmention_jobs: list[tuple[str, str, str, list[str]]] = []

    def date_of(entry: importer.FeedEntry) -> dt.datetime:
        row = rows.get(entry.key)
        if entry.date is not None:
            return entry.date
        if row is not None:
            return dt.datetime.fromtimestamp(row["published"], dt.UTC)
        return now_dt

    entries = sorted(parsed.entries, key=date_of)
    for entry in entries:
        if entry.key in current:
            continue  # the same entry twice in one feed: the first one counts
        date = date_of(entry)
        current[entry.key] = date.timestamp()
        row = rows.get(entry.key)
        live = row is not None and row["state"] == "live"
        slug = str(row["slug"]) if row is not None and live else _unique_slug(db, entry)
        post = entry_post(config, feed_url, entry, slug, date)
        obj = bridged_object(config, post)
        digest = outbox.object_digest(obj)
        if live and row is not None and row["digest"] == digest:
            continue
        federated = bool(row["federated"]) if live and row is not None else False
        old_links: list[str] = json.loads(row["links"]) if live and row is not None else []
        served = _sign(ctx, obj, post.last_modified)
        links = sorted(mentions.links(post.html, entry.link or config.base_url + "/"))
        announce = True
        if not live and date < since:
            report.recorded.append(slug)
            announce = False
        elif not live:
            activity = _sign(ctx, activities.create(config, served), post.date)
            report.queued += delivery.enqueue(db, activity, inboxes)
            ctx.enqueue(activity, [])
            report.created.append(slug)
            federated = True
        elif federated:
            full = dict(obj)
            full.setdefault("updated", activities.iso(now_dt))
            served = _sign(ctx, full, now_dt)
            activity = _sign(ctx, activities.update(config, served, now_dt), now_dt)
            report.queued += delivery.enqueue(db, activity, inboxes)
            ctx.enqueue(activity, [])
            report.updated.append(slug)
        else:
            report.recorded.append(slug)  # an old, never announced entry changed
            announce = False
        with db.tx() as con:
            if row is not None and not live:
                # Back after a Delete: a new id (receivers keep the old one's tombstone),
                # and the old row stays to answer 410 for the old id.
                con.execute(
                    "UPDATE bridge_entries SET entry_key = ? WHERE feed = ? AND entry_key = ?",
                    (f"{entry.key}#deleted:{row['slug']}", feed_url, entry.key),
                )
            con.execute(
                "INSERT INTO bridge_entries(feed, entry_key, slug, link, published, digest, "
                "object, as_type, links, state, federated, first_seen, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'live', ?, ?, ?) "
                "ON CONFLICT(feed, entry_key) DO UPDATE SET link = excluded.link, "
                "published = excluded.published, digest = excluded.digest, "
                "object = excluded.object, as_type = excluded.as_type, links = excluded.links, "
                "state = 'live', federated = excluded.federated, updated = excluded.updated",
                (
                    feed_url,
                    entry.key,
                    slug,
                    entry.link or "",
                    date.timestamp(),
                    digest,
                    json.dumps(served, ensure_ascii=False),
                    obj["type"],
                    json.dumps(links if not announce else old_links),
                    int(federated),
                    moment,
                    moment,
                ),
            )
        if announce and entry.link:
            webmention_jobs.append((slug, entry.link, post.html, old_links))

    # Entries gone from the feed while it still covers their dates were deleted upstream.
    if current:
        oldest = min(current.values())
        for key, row in rows.items():
            if key in current or row["state"] != "live" or row["published"] < oldest:
                continue
            slug = str(row["slug"])
            if row["federated"]:
                activity = _sign(
                    ctx, activities.delete(config, object_id(config, slug), now_dt), now_dt
                )
                report.queued += delivery.enqueue(db, activity, inboxes)
                ctx.enqueue(activity, [])
            report.deleted.append(slug)
            with db.tx() as con:
                con.execute(
                    "UPDATE bridge_entries SET state = 'deleted', updated = ? "
                    "WHERE feed = ? AND entry_key = ?",
                    (moment, feed_url, key),
                )
            if row["federated"] and row["link"]:
                webmention_jobs.append((slug, str(row["link"]), "", json.loads(row["links"])))

    for slug, source, html, old_links in webmention_jobs:
        results = await mentions.send(source, html, old_links)
        report.webmentions += results
        links = sorted(
            {r.target for r in results} | (mentions.links(html, source) if html else set())
        )
        with db.tx() as con:
            con.execute(
                "UPDATE bridge_entries SET links = ? WHERE slug = ?", (json.dumps(links), slug)
            )


# ---- the daemon's side ----------------------------------------------------------------------


async def poll_once(ctx: Context) -> BridgeReport:
    """Poll every configured feed now, whatever its schedule (validators still apply)."""
    report = BridgeReport()
    for feed in ctx.config.bridge_feeds:
        report.feeds.append(await poll_feed(ctx, feed))
    return report


async def run_feed_bridge(ctx: Context, stop: asyncio.Event) -> None:
    """Poll each feed when it is due until ``stop`` is set (a lifespan task)."""
    feeds = ctx.config.bridge_feeds
    if not feeds:
        return
    ensure_schema(ctx.db)
    while not stop.is_set():
        now = time.time()
        for feed in feeds:
            if stop.is_set():
                return
            if float(_state(ctx.db, feed.url)["next_poll"]) <= now:
                try:
                    result = await poll_feed(ctx, feed)
                except Exception:  # a bug must not end the bridge; the feed is retried
                    log.exception("bridge: polling %s failed", feed.url)
                    continue
                if result.created or result.updated or result.deleted:
                    log.warning(
                        "bridge: %s: %d new, %d updated, %d deleted",
                        feed.url,
                        len(result.created),
                        len(result.updated),
                        len(result.deleted),
                    )
        due = min(float(_state(ctx.db, f.url)["next_poll"]) for f in feeds)
        wait = min(max(due - time.time(), 0.05), 60.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


def routes(ctx: Context) -> list[Route]:
    """``/ap/bridge/<slug>.json`` and ``.../create.json``; mount before the catch-all."""

    def find(slug: str) -> dict[str, Any] | None:
        ensure_schema(ctx.db)
        row = ctx.db.one("SELECT * FROM bridge_entries WHERE slug = ?", (slug,))
        return dict(row) if row is not None else None

    headers = {"Access-Control-Allow-Origin": "*"}

    async def document(request: Request) -> Response:
        row = find(str(request.path_params["slug"]))
        if row is None:
            return PlainTextResponse("not found", 404)
        if row["state"] != "live":
            tomb = activities.tombstone(
                object_id(ctx.config, row["slug"]),
                row["as_type"],
                dt.datetime.fromtimestamp(row["updated"], dt.UTC),
            )
            return JSONResponse(tomb, status_code=410, media_type=AP_JSON, headers=headers)
        return JSONResponse(json.loads(row["object"]), media_type=AP_JSON, headers=headers)

    async def create(request: Request) -> Response:
        row = find(str(request.path_params["slug"]))
        if row is None or row["state"] != "live" or not row["federated"]:
            return PlainTextResponse("not found", 404)
        obj = json.loads(row["object"])
        moment = dt.datetime.fromtimestamp(row["published"], dt.UTC)
        activity = _sign(ctx, activities.create(ctx.config, obj), moment)
        return JSONResponse(activity, media_type=AP_JSON, headers=headers)

    return [
        Route("/ap/bridge/{slug}.json", document, methods=["GET", "HEAD"]),
        Route("/ap/bridge/{slug}/create.json", create, methods=["GET", "HEAD"]),
    ]
