"""Bridge mode, federating side: feed entries -> ``Post`` values -> signed objects.

``federate(ctx, feed_url, parsed, moment, report)`` diffs one fetched feed against the
``bridge_entries`` table: new entries go out as Create, changed ones as Update, removed ones
as Delete, built and signed exactly as ``outbox.publish`` does, and webmentions go to the
links of new or changed entries (from the entry's own page).  Fetching the feed and the
daemon's routes are in ``bridge.daemon.feedbridge``.

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

import datetime as dt
import hashlib
import json
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

import nh3

from bridge.config import SiteConfig
from bridge.conversations.post_mentions import PostWebmentions
from bridge.db import Database
from bridge.federation import delivery, outbox
from bridge.federation.context import Context
from bridge.site import activities, importer, proofs
from bridge.site.posts import SLUG_RE, Post

log = logging.getLogger("indiebridge.bridge")

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


def ensure_schema(db: Database) -> None:
    """Create the bridge's tables if they are missing (once per Database)."""
    if db not in _ready:
        db.con.executescript(SCHEMA)
        _ready.add(db)


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


def sign(ctx: Context, obj: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    return proofs.sign_object(
        proofs.strip_proof(obj), ctx.keys.ed25519, ctx.config.ed25519_key_id, moment
    )


def _unique_slug(db: Database, entry: importer.FeedEntry) -> str:
    taken = {str(r["slug"]) for r in db.query("SELECT slug FROM bridge_entries")}
    base = importer.slug_base(entry)
    if not SLUG_RE.match(base):
        base = "entry"
    return importer.unique_slug(base, taken)


async def federate(
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
        served = sign(ctx, obj, post.last_modified)
        links = sorted(mentions.links(post.html, entry.link or config.base_url + "/"))
        announce = True
        if not live and date < since:
            report.recorded.append(slug)
            announce = False
        elif not live:
            activity = sign(ctx, activities.create(config, served), post.date)
            report.queued += delivery.enqueue(db, activity, inboxes)
            ctx.wake_delivery()
            report.created.append(slug)
            federated = True
        elif federated:
            full = dict(obj)
            full.setdefault("updated", activities.iso(now_dt))
            served = sign(ctx, full, now_dt)
            activity = sign(ctx, activities.update(config, served, now_dt), now_dt)
            report.queued += delivery.enqueue(db, activity, inboxes)
            ctx.wake_delivery()
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
                activity = sign(
                    ctx, activities.delete(config, object_id(config, slug), now_dt), now_dt
                )
                report.queued += delivery.enqueue(db, activity, inboxes)
                ctx.wake_delivery()
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
