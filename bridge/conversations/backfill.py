"""Backfilling a post's thread: replies to the replies we hold, found through their
``replies`` collections (``indiebridge conversations backfill POST``).

Mastodon (4.4+) and others fetch a thread through the ``replies`` collection of each
object (https://docs.joinmastodon.org/spec/activitypub/, "replies"; Mastodon pages it as
a ``Collection`` whose ``first`` page lists the author's own replies and whose ``next``
pages list the others, items by id or embedded).  A remote reply to a comment we show may
never have reached our inbox (its author did not address us); walking those collections
finds it.  Each object found is stored through the inbox's own path
(``replies.on_create`` with the object as fetched), so blocks, ``comments_policy``,
rejections and the "public or unlisted only" rule apply exactly as for a delivery.

Remote input is hostile; the walk is bounded (``Limits``):

* at most ``max_items`` objects fetched in all, ``max_depth`` levels of replies below
  the comments we hold, ``max_pages`` pages per collection, ``max_page_items`` items
  read from one page, and ``seconds`` in all (what runs at the deadline is cancelled);
* every GET is signed and goes through the SSRF-guarded fetcher (1 MiB per document),
  and a document's id must be on the origin that served it (``Actors.fetch_document``);
* a collection or page on another origin than the object it belongs to is not read,
  a page seen before is not read again (loops), an item already seen is skipped;
* an embedded item is used as sent only when its id is on the page's origin; otherwise
  it is fetched from its own origin, and dropped if that fails;
* nothing from a blocked actor or domain is fetched.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from bridge.conversations import replies
from bridge.conversations.shapes import ref
from bridge.errors import BridgeError
from bridge.federation import followers
from bridge.federation.actors import as_list, first_id, same_origin
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.sanitize import http_url

log = logging.getLogger("indiebridge.conversations")


@dataclass(frozen=True)
class Limits:
    max_items: int = 200
    max_depth: int = 3
    max_pages: int = 5
    max_page_items: int = 100
    seconds: float = 60.0


@dataclass
class BackfillReport:
    slug: str
    walked: int = 0  # comments whose replies collection was read
    fetched: int = 0  # remote objects looked at
    stored: int = 0  # new comments
    dropped: int = 0  # foreign-origin, unfetchable or refused items
    stopped: str = ""  # why the walk ended early, "" when it ran out of work

    def summary(self) -> str:
        stop = f"; stopped early: {self.stopped}" if self.stopped else ""
        return (
            f"Backfill of {self.slug}: read the replies of {self.walked} comments, "
            f"fetched {self.fetched} objects, stored {self.stored} new comments, "
            f"dropped {self.dropped}{stop}."
        )


class _Walk:
    def __init__(self, ctx: Context, slug: str, limits: Limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.report = BackfillReport(slug)
        self.seen_items: set[str] = set()
        self.seen_pages: set[str] = set()

    async def fetch(self, url: str) -> dict[str, Any] | None:
        if followers.is_blocked(self.ctx.db, url):
            return None
        try:
            return await self.ctx.actors.fetch_document(url)
        except BridgeError as exc:
            log.info("backfill: %s", exc)
            return None

    async def pages(self, owner: str, replies_value: Any) -> AsyncIterator[tuple[str, Any]]:
        """(page origin URL, item) for the items of a ``replies`` collection, bounded."""
        value: Any = replies_value
        read = 0
        while value is not None and read < self.limits.max_pages:
            if isinstance(value, str):
                if not same_origin(value, owner) or value in self.seen_pages:
                    return  # another origin's collection, or a loop
                self.seen_pages.add(value)
                fetched = await self.fetch(value)
                if fetched is None:
                    return
                value, where = fetched, value
            elif isinstance(value, dict):
                where = str(value.get("id") or owner)
                if not same_origin(where, owner):
                    return
                if isinstance(value.get("id"), str):
                    self.seen_pages.add(value["id"])
            else:
                return
            read += 1
            items = [*as_list(value.get("orderedItems")), *as_list(value.get("items"))]
            for item in items[: self.limits.max_page_items]:
                yield where, item
            following = value.get("first") if "first" in value else value.get("next")
            if isinstance(following, dict) and following.get("id") in self.seen_pages:
                return
            value = following

    async def item(self, where: str, item: Any) -> dict[str, Any] | None:
        """The object for one collection item: embedded on the page's origin, else from
        its own origin (a foreign copy is never trusted)."""
        item_id = ref(item)
        if not item_id or not http_url(item_id) or item_id in self.seen_items:
            return None
        self.seen_items.add(item_id)
        if self.report.fetched >= self.limits.max_items:
            self.report.stopped = f"{self.limits.max_items} objects fetched"
            return None
        self.report.fetched += 1
        if isinstance(item, dict) and same_origin(item_id, where) and "type" in item:
            return item
        doc = await self.fetch(item_id)
        if doc is None or not same_origin(str(doc.get("id")), item_id):
            self.report.dropped += 1
            return None
        return doc

    async def store(self, doc: dict[str, Any]) -> None:
        author = first_id(doc.get("attributedTo"))
        cid = comment_id("activitypub", str(doc["id"]))
        if not author or followers.is_blocked(self.ctx.db, author):
            self.report.dropped += 1
            return
        had = self.ctx.comments.get(cid) is not None
        activity = {"type": "Create", "actor": author, "object": doc}
        try:
            await replies.on_create(self.ctx, activity, False)
        except BridgeError as exc:
            log.info("backfill: %s: %s", doc["id"], exc)
        if not had and self.ctx.comments.get(cid) is not None:
            self.report.stored += 1
        elif not had:
            self.report.dropped += 1  # not a public reply in this thread, or refused

    async def run(self, seeds: list[str]) -> None:
        # (object id, depth, its document when already in hand); the seeds are fetched.
        queue: deque[tuple[str, int, dict[str, Any] | None]] = deque((s, 0, None) for s in seeds)
        self.seen_items.update(seeds)
        while queue and not self.report.stopped:
            object_id, depth, doc = queue.popleft()
            if depth >= self.limits.max_depth:
                continue
            if doc is None:
                doc = await self.fetch(object_id)
            if doc is None or doc.get("replies") is None:
                continue
            self.report.walked += 1
            async for where, item in self.pages(object_id, doc.get("replies")):
                found = await self.item(where, item)
                if found is None:
                    if self.report.stopped:
                        return
                    continue
                await self.store(found)
                if self.ctx.comments.get(comment_id("activitypub", str(found["id"]))):
                    queue.append((str(found["id"]), depth + 1, found))


def reply_ids(ctx: Context, slug: str) -> list[str]:
    """The remote ids of the fediverse replies we hold on ``slug``, oldest first."""
    held = [
        c
        for s, c in ctx.comments.iter_all()
        if s == slug and c.protocol == "activitypub" and c.type == "reply" and c.object_id
    ]
    return [c.object_id for c in sorted(held, key=lambda c: c.published)]


async def backfill(ctx: Context, slug: str, limits: Limits | None = None) -> BackfillReport:
    """Walk the ``replies`` of the replies held on ``slug`` and store the ones missing;
    the post is marked for rebuild when any was stored."""
    limits = limits or Limits()
    walk = _Walk(ctx, slug, limits)
    with anyio.move_on_after(limits.seconds) as scope:
        await walk.run(reply_ids(ctx, slug))
    if scope.cancelled_caught:
        walk.report.stopped = f"time budget of {limits.seconds:g} s"
    if walk.report.stored:
        ctx.mark_dirty(slug)
    return walk.report
