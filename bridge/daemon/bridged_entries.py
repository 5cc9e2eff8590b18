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
``/ap/bridge/<slug>/create.json``.  They are not in the outbox (``/ap/outbox.json``), which
the build writes from ``content/`` alone.  Putting them there is not a small change:

* the build would read this table from the state database, so ``public/`` would depend on
  the machine's state (a build from a checkout, as in CI or on a laptop, would differ
  from the server's) and the build side would read what the daemon owns;
* ``bridge.site.plan`` emits each outbox page right after the posts it lists and keys it
  on them; interleaving a second, date-ordered stream would change every page's key each
  time an entry arrives;
* the build would have to run after every poll that announces something.

The way to do it is on the daemon's side: answer ``/ap/outbox.json`` and its pages from
the built pages merged with this table, in front of the static files.  Until then,
whatever reads the outbox (a server backfilling a profile, an archiver) misses bridged
entries; followers get them by delivery, and each object is fetchable at its id.

What counts as a removal
------------------------
Feeds are windows: most keep only the latest N entries, so an entry that slides off the
end was not deleted.  An entry missing from the feed is deleted only when it is newer
than the oldest entry the feed still carries; an empty feed deletes nothing (a broken
CMS template must not wipe an actor's posts).

Dates, the first poll and the backfill horizon
----------------------------------------------
Entries are dated by their ``published`` (else ``updated``) date; an entry without one is
dated by the moment it was first seen, which is stored, so it never changes.

* The first poll of a feed (no entry of it recorded yet) is an honest backfill: entries
  older than ``federate_since`` (site.toml, or the moment of the first publish) are
  recorded and served but never announced, so turning the bridge on does not flood
  followers' timelines with an archive.
* After that, an entry seen for the first time is announced whatever its date, unless it
  is older than the feed's ``backfill_days`` (default 7) before the poll.  Feed dates are
  coarse (Pelican's are to the minute) and posts are often backdated, so a post written
  a minute after bridging started may be dated before ``federate_since``: it still goes
  out.  The horizon keeps a feed that widens its window (10 entries to 50) from
  announcing its archive.
* Every entry not announced is one log line (``indiebridge.bridge``, INFO) saying why.
"""

import datetime as dt
import json
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from bridge.config import BridgeFeed
from bridge.conversations.post_mentions import PostWebmentions
from bridge.daemon.bridged_objects import bridged_object, entry_post, object_id, sign
from bridge.db import Database
from bridge.federation import delivery, outbox
from bridge.federation.context import Context
from bridge.site import activities, importer
from bridge.site.posts import SLUG_RE

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


# ---- the diff ------------------------------------------------------------------------


def _unique_slug(db: Database, entry: importer.FeedEntry) -> str:
    taken = {str(r["slug"]) for r in db.query("SELECT slug FROM bridge_entries")}
    base = importer.slug_base(entry)
    if not SLUG_RE.match(base):
        base = "entry"
    return importer.unique_slug(base, taken)


def _name(entry: importer.FeedEntry) -> str:
    return entry.link or entry.key


async def federate(
    ctx: Context, feed: BridgeFeed, parsed: importer.ParsedFeed, moment: float, report: FeedReport
) -> None:
    """Diff one fetched feed against ``bridge_entries``: announce, record, delete, mention."""
    diff = _FeedDiff(ctx, feed, moment, report)
    for entry in sorted(parsed.entries, key=diff.date_of):
        diff.entry(entry)
    diff.deletions()
    await diff.send_webmentions()


@dataclass
class _Job:
    """A webmention round for one entry: its page, its HTML ("" once deleted), old links."""

    slug: str
    source: str
    html: str
    old_links: list[str]


class _FeedDiff:
    """One poll's diff: each step is a method, the shared state lives on the instance."""

    def __init__(self, ctx: Context, feed: BridgeFeed, moment: float, report: FeedReport) -> None:
        self.ctx, self.db, self.config = ctx, ctx.db, ctx.config
        self.feed_url = feed.url
        self.backfill_days = feed.backfill_days
        self.moment = moment
        self.report = report
        self.rows = {
            str(r["entry_key"]): dict(r)
            for r in self.db.query("SELECT * FROM bridge_entries WHERE feed = ?", (feed.url,))
        }
        self.since = outbox.federate_since(ctx)
        self.now = dt.datetime.fromtimestamp(int(moment), dt.UTC)
        self.first_poll = not self.rows
        self.horizon = self.now - dt.timedelta(days=feed.backfill_days)
        self.inboxes = delivery.inboxes_for_followers(self.db)
        self.current: dict[str, float] = {}  # entry key -> date, for the entries in the feed
        self.mentions = PostWebmentions(ctx)
        self.jobs: list[_Job] = []

    def date_of(self, entry: importer.FeedEntry) -> dt.datetime:
        """The entry's date; without one, the moment it was first seen (stored)."""
        row = self.rows.get(entry.key)
        if entry.date is not None:
            return entry.date
        if row is not None:
            return dt.datetime.fromtimestamp(row["published"], dt.UTC)
        return self.now

    def held(self, date: dt.datetime) -> str:
        """Why a new entry dated ``date`` is recorded without announcing it ("" if not)."""
        if self.first_poll and date < self.since:
            return (
                f"dated {activities.iso(date)}, before federate_since "
                f"{activities.iso(self.since)}, on the feed's first poll (backfill)"
            )
        if not self.first_poll and date < self.horizon:
            return (
                f"dated {activities.iso(date)}, older than the backfill horizon "
                f"(backfill_days = {self.backfill_days})"
            )
        return ""

    def _not_announced(self, entry: importer.FeedEntry, why: str) -> None:
        log.info("bridge: %s: %s: not announced: %s", self.feed_url, _name(entry), why)

    def _queue(self, activity: dict[str, Any]) -> None:
        self.report.queued += delivery.enqueue(self.db, activity, self.inboxes)
        self.ctx.wake_delivery()

    def entry(self, entry: importer.FeedEntry) -> None:
        """Announce a new or changed entry (or record it without announcing)."""
        if entry.key in self.current:
            self._not_announced(entry, "it appears twice in the feed; the first one counts")
            return
        date = self.date_of(entry)
        self.current[entry.key] = date.timestamp()
        row = self.rows.get(entry.key)
        live = row if row is not None and row["state"] == "live" else None
        slug = str(live["slug"]) if live is not None else _unique_slug(self.db, entry)
        post = entry_post(self.config, self.feed_url, entry, slug, date)
        obj = bridged_object(self.config, post, dict(entry.tag_links))
        digest = outbox.object_digest(obj)
        if live is not None and live["digest"] == digest:
            return
        federated = bool(live["federated"]) if live is not None else False
        old_links: list[str] = json.loads(live["links"]) if live is not None else []
        served = sign(self.ctx, obj, post.last_modified)
        links = sorted(self.mentions.links(post.html, entry.link or self.config.base_url + "/"))
        announce = True
        held = self.held(date) if live is None else ""
        if held:
            self.report.recorded.append(slug)
            self._not_announced(entry, held + "; recorded and served only")
            announce = False
        elif live is None:
            self._queue(sign(self.ctx, activities.create(self.config, served), post.date))
            self.report.created.append(slug)
            federated = True
        elif federated:
            full = dict(obj)
            full.setdefault("updated", activities.iso(self.now))
            served = sign(self.ctx, full, self.now)
            self._queue(sign(self.ctx, activities.update(self.config, served, self.now), self.now))
            self.report.updated.append(slug)
        else:
            self.report.recorded.append(slug)  # an old, never announced entry changed
            self._not_announced(entry, "changed, but it was never announced; recorded only")
            announce = False
        self._save(
            entry,
            row,
            slug=slug,
            date=date,
            digest=digest,
            served=served,
            as_type=str(obj["type"]),
            links=links if not announce else old_links,
            federated=federated,
        )
        if announce and entry.link:
            self.jobs.append(_Job(slug, entry.link, post.html, old_links))

    def _save(
        self,
        entry: importer.FeedEntry,
        row: dict[str, Any] | None,
        *,
        slug: str,
        date: dt.datetime,
        digest: str,
        served: dict[str, Any],
        as_type: str,
        links: list[str],
        federated: bool,
    ) -> None:
        with self.db.tx() as con:
            if row is not None and row["state"] != "live":
                # Back after a Delete: a new id (receivers keep the old one's tombstone),
                # and the old row stays to answer 410 for the old id.
                con.execute(
                    "UPDATE bridge_entries SET entry_key = ? WHERE feed = ? AND entry_key = ?",
                    (f"{entry.key}#deleted:{row['slug']}", self.feed_url, entry.key),
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
                    self.feed_url,
                    entry.key,
                    slug,
                    entry.link or "",
                    date.timestamp(),
                    digest,
                    json.dumps(served, ensure_ascii=False),
                    as_type,
                    json.dumps(links),
                    int(federated),
                    self.moment,
                    self.moment,
                ),
            )

    def deletions(self) -> None:
        """Entries gone from the feed while it still covers their dates were deleted."""
        if not self.current:
            return  # an empty feed deletes nothing
        oldest = min(self.current.values())
        for key, row in self.rows.items():
            if key in self.current or row["state"] != "live" or row["published"] < oldest:
                continue
            slug = str(row["slug"])
            if row["federated"]:
                target = object_id(self.config, slug)
                self._queue(
                    sign(self.ctx, activities.delete(self.config, target, self.now), self.now)
                )
            else:
                log.info(
                    "bridge: %s: %s: removed from the feed; never announced, so no Delete",
                    self.feed_url,
                    row["link"] or key,
                )
            self.report.deleted.append(slug)
            with self.db.tx() as con:
                con.execute(
                    "UPDATE bridge_entries SET state = 'deleted', updated = ? "
                    "WHERE feed = ? AND entry_key = ?",
                    (self.moment, self.feed_url, key),
                )
            if row["federated"] and row["link"]:
                self.jobs.append(_Job(slug, str(row["link"]), "", json.loads(row["links"])))

    async def send_webmentions(self) -> None:
        for job in self.jobs:
            results = await self.mentions.send(job.source, job.html, job.old_links)
            self.report.webmentions += results
            linked = self.mentions.links(job.html, job.source) if job.html else set()
            links = sorted({r.target for r in results} | linked)
            with self.db.tx() as con:
                con.execute(
                    "UPDATE bridge_entries SET links = ? WHERE slug = ?",
                    (json.dumps(links), job.slug),
                )
