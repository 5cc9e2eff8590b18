"""Salmention: when the replies under a post change, tell the pages the post answers.

When an approved reply under a post is added, edited or removed, ``note_change`` marks the
post's pages dirty and queues the post (``queue_salmention``; the queue is one JSON object
``{slug: queued_at}`` in the ``meta`` table, so many changes of one post are one entry).
``run_due_salmentions`` (the daemon runs it every poll) re-sends webmentions from the
post's URL to the post's ``in_reply_to`` and links once the rebuilt page is on disk (its
mtime is newer than the change), or after ``SALMENTION_MAX_WAIT`` seconds, so upstream
sites fetch a page that shows the reply.  Changes are coalesced: a post is sent at most
once per ``SALMENTION_INTERVAL`` seconds, so thirty quick edits of one reply make two
rounds of requests (the first change, then the rest together), not thirty.
``salmention(ctx, slug)`` sends at once.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

import anyio

from bridge.conversations.webmention_client import SendResult, find_links
from bridge.conversations.webmention_outbox import is_own, send_all
from bridge.db import Database
from bridge.errors import BridgeError
from bridge.federation.context import Context
from bridge.site.posts import Comment

__all__ = [
    "note_change",
    "queue_salmention",
    "queue_salmentions",
    "run_due_salmentions",
    "salmention",
]

log = logging.getLogger("indiebridge.webmentions")

SALMENTION_KEY = "salmention_queue"
SENT_KEY = "salmention_sent"
SALMENTION_MAX_WAIT = 120.0
SALMENTION_INTERVAL = 600.0  # at most one Salmention per post in this many seconds


def note_change(ctx: Context, slug: str, comment: Comment) -> None:
    """A comment under ``slug`` was written or removed: rebuild the post's pages and, for an
    approved reply, queue a Salmention (for the inbox processor's batch: once per post and
    batch, when the batch's files are written, ``CommentStore.after_batch``)."""
    ctx.mark_dirty(slug)
    if comment.status == "approved" and comment.type == "reply":
        db = ctx.db
        if not ctx.comments.after_batch(
            "salmention", lambda slugs: queue_salmentions(db, slugs), slug
        ):
            queue_salmention(db, slug)


def read_queue(db: Database) -> dict[str, float]:
    """The queued posts: ``{slug: time queued}``."""
    raw = db.get_meta(SALMENTION_KEY)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def queue_salmention(db: Database, slug: str) -> None:
    """Note that ``slug``'s replies changed; ``run_due_salmentions`` sends after the rebuild."""
    queue_salmentions(db, [slug])


def queue_salmentions(db: Database, slugs: list[str]) -> None:
    """``queue_salmention`` for each of ``slugs``, in one transaction."""
    if not slugs:
        return
    with db.tx() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (SALMENTION_KEY,)).fetchone()
        try:
            queue = json.loads(row["value"]) if row else {}
        except ValueError:
            queue = {}
        if not isinstance(queue, dict):
            queue = {}
        moment = time.time()
        for slug in slugs:
            queue[slug] = moment
        con.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (SALMENTION_KEY, json.dumps(queue)),
        )


def _take(db: Database, slug: str, queued: float) -> bool:
    """Remove ``slug`` from the queue if it was not queued again meanwhile."""
    with db.tx() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (SALMENTION_KEY,)).fetchone()
        queue = json.loads(row["value"]) if row else {}
        if queue.get(slug) != queued:
            return False
        del queue[slug]
        con.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(queue), SALMENTION_KEY))
    return True


def _last_sent(db: Database) -> dict[str, float]:
    raw = db.get_meta(SENT_KEY)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _record_sent(db: Database, slug: str, when: float, interval: float) -> None:
    """Remember when ``slug`` was sent; entries older than ``interval`` are dropped, so the
    record holds at most the posts sent in the last interval."""
    with db.tx() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (SENT_KEY,)).fetchone()
        try:
            sent = json.loads(row["value"]) if row else {}
        except ValueError:
            sent = {}
        if not isinstance(sent, dict):
            sent = {}
        sent = {k: v for k, v in sent.items() if isinstance(v, float) and when - v < interval}
        sent[slug] = when
        con.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (SENT_KEY, json.dumps(sent)),
        )


async def run_due_salmentions(
    ctx: Context,
    max_wait: float = SALMENTION_MAX_WAIT,
    interval: float = SALMENTION_INTERVAL,
) -> int:
    """Send queued Salmentions whose post page was rebuilt (or waited ``max_wait``).

    Changes are coalesced: a post is sent at most once per ``interval`` seconds; changes in
    between stay queued as one entry and go out together when the interval is over.
    """
    sent = 0
    last_sent = _last_sent(ctx.db)
    for slug, queued in read_queue(ctx.db).items():
        if time.time() - last_sent.get(slug, 0.0) < interval:
            continue
        page = ctx.config.output_dir / "posts" / slug / "index.html"
        try:
            rebuilt = page.stat().st_mtime >= queued
        except OSError:
            rebuilt = False
        if not rebuilt and time.time() - queued < max_wait:
            continue
        if _take(ctx.db, slug, queued):
            _record_sent(ctx.db, slug, time.time(), interval)
            await salmention(ctx, slug)
            sent += 1
    return sent


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def _post_targets(ctx: Context, slug: str) -> list[str]:
    from bridge.site import content

    try:
        posts, _ = await anyio.to_thread.run_sync(lambda: content.load(ctx.config))
    except BridgeError as exc:
        log.warning("salmention for %s: cannot read posts: %s", slug, exc)
        return []
    post = next((p for p in posts if p.slug == slug), None)
    if post is None:
        return []
    url = ctx.config.post_url(slug)
    targets = ([post.in_reply_to] if post.in_reply_to else []) + find_links(post.html, url)
    return [t for t in dict.fromkeys(targets) if _is_http(t) and not is_own(ctx, t)]


async def salmention(ctx: Context, slug: str) -> list[SendResult]:
    """Re-send webmentions from the post's URL to what it replies to and links, so
    upstream pages refresh the nested comments they show.  Never raises for network
    trouble."""
    targets = await _post_targets(ctx, slug)
    if not targets:
        return []
    return await send_all(ctx, ctx.config.post_url(slug), targets)
