"""Webmention for the blog: receiving (endpoint + asynchronous verification), sending
for published posts, and Salmention.

Receiving (W3C Webmention, section 3.2):

* ``receive`` is the ``POST /webmention`` handler.  It only checks the request: form
  fields ``source`` and ``target`` present, both http(s), different, and the target one of
  our posts (fragment ignored).  Each refusal is a 400 with a one-line plain-text reason;
  otherwise the pair is stored in ``webmentions_in`` and answered 202 without Location.
* ``process_pending`` verifies stored pairs in the background: the source is fetched with
  ``ctx.fetcher`` (size, time and redirect limits; private addresses refused unless
  ``allow_private_addresses``).  410 or 404, or a source that no longer links to the
  target, removes the comment for that (source, target).  A linking source is read with
  ``bridge.mf2`` (type, authorship) and stored as a comment with protocol ``webmention``
  and id ``comment_id("webmention", source + " " + post URL)``, so a re-sent webmention
  updates it.  Timeouts, connection errors, 5xx, 408 and 429 are retried after
  ``RETRY_DELAYS`` (``tries``/``next_try``), then the row is marked failed.

Sending: ``send_for_post`` notifies every link of a post's HTML and every link an edit
removed (webmention.rocks Update 2), skipping links to this site, and records each
result in ``webmentions_out`` (``list_sent`` reads them back).

Salmention: when an approved reply under a post is added, edited or removed,
``queue_salmention`` notes the post; ``process_pending`` (the daemon runs it every poll)
re-sends webmentions from the post's URL to the post's ``in_reply_to`` and links once
the rebuilt page is on disk (its mtime is newer than the change), or after
``SALMENTION_MAX_WAIT`` seconds, so upstream sites fetch a page that shows the reply.
``salmention(ctx, slug)`` sends at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urldefrag, urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bridge.conversations import mf2, moderation
from bridge.conversations.webmention_client import SendResult, find_links, links_to, send_webmention
from bridge.db import Database, now
from bridge.errors import BlockedAddressError, BridgeError, FetchError
from bridge.federation import followers
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor

__all__ = [
    "list_sent",
    "process_pending",
    "queue_salmention",
    "receive",
    "run_due_salmentions",
    "salmention",
    "send_for_post",
    "validate",
    "verify",
]

log = logging.getLogger("indiebridge.webmentions")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM = 16_384
MAX_URL = 2048
MAX_PENDING = 10_000
RETRY_DELAYS = (60.0, 600.0, 3600.0)  # after the 1st, 2nd, 3rd transient failure; then failed
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SOURCE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, application/json;q=0.5, text/plain;q=0.3"
SEND_CONCURRENCY = 4
SALMENTION_KEY = "salmention_queue"
SALMENTION_MAX_WAIT = 120.0


# ---- receiving: the endpoint ---------------------------------------------------------------


def _bad(reason: str) -> PlainTextResponse:
    return PlainTextResponse(reason + "\n", status_code=400)


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate(ctx: Context, source: str | None, target: str | None) -> tuple[str | None, str]:
    """(reason for a 400 or None, the post slug).  The checks of ``receive``."""
    if not source:
        return "missing 'source' parameter", ""
    if not target:
        return "missing 'target' parameter", ""
    if len(source) > MAX_URL or len(target) > MAX_URL:
        return f"source and target must be at most {MAX_URL} characters", ""
    if not _is_http(source):
        return "source must be an http or https URL", ""
    if not _is_http(target):
        return "target must be an http or https URL", ""
    if urldefrag(source).url == urldefrag(target).url:
        return "source and target must be different URLs", ""
    slug = ctx.post_slug(target)
    if slug is None:
        return "target is not a post of this site, so it does not accept webmentions", ""
    return None, slug


async def receive(ctx: Context, request: Request, notify: Callable[[], None]) -> Response:
    """``POST /webmention``: check, store, answer 202 (verification happens later)."""
    from bridge.federation.inbox import read_body

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        return _bad(f"expected Content-Type {FORM_TYPE} with source and target")
    body = await read_body(request, MAX_FORM)
    if body is None:
        return PlainTextResponse(f"request larger than {MAX_FORM} bytes\n", status_code=413)
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value.strip())
    source, target = form.get("source"), form.get("target")
    reason, _ = validate(ctx, source, target)
    if reason is not None:
        return _bad(reason)
    assert source is not None and target is not None
    if followers.is_blocked(ctx.db, source):
        return PlainTextResponse("Accepted\n", status_code=202)  # dropped, as the inbox does
    pending = ctx.db.one("SELECT count(*) AS n FROM webmentions_in WHERE status = 'new'")
    if pending is not None and pending["n"] >= MAX_PENDING:
        return PlainTextResponse(
            "too many webmentions waiting; try again later\n",
            status_code=503,
            headers={"Retry-After": "600"},
        )
    with ctx.db.tx() as con:
        cur = con.execute(
            "INSERT OR IGNORE INTO webmentions_in(source, target, received, status, next_try) "
            "VALUES (?, ?, ?, 'new', ?)",
            (source, target, now(), now()),
        )
    if cur.rowcount:
        notify()
    return PlainTextResponse(
        "Accepted: the source will be checked for a link to the target.\n", status_code=202
    )


# ---- receiving: verification -----------------------------------------------------------------


class _Retry(Exception):
    """A transient failure: try this webmention again later."""


async def process_pending(ctx: Context, limit: int = 20) -> int:
    """Verify due webmentions and send due Salmentions; returns how many were handled."""
    rows = ctx.db.query(
        "SELECT id, source, target, tries FROM webmentions_in "
        "WHERE status = 'new' AND next_try <= ? ORDER BY received LIMIT ?",
        (now(), limit),
    )
    for row in rows:
        status, error, next_try = "done", "", 0.0
        try:
            error = await verify(ctx, row["source"], row["target"])
        except _Retry as exc:
            tries = row["tries"] + 1
            error = str(exc)
            if tries <= len(RETRY_DELAYS):
                status, next_try = "new", now() + RETRY_DELAYS[tries - 1]
            else:
                status = "failed"
        except Exception as exc:  # one bad source must not stall the queue
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("webmention %s -> %s failed", row["source"], row["target"])
        if error:
            log.info("webmention %s -> %s: %s", row["source"], row["target"], error)
        _finish(ctx.db, row["id"], row["source"], row["target"], status, error, next_try)
    sent = await run_due_salmentions(ctx)
    return len(rows) + sent


def _finish(
    db: Database, row_id: int, source: str, target: str, status: str, error: str, next_try: float
) -> None:
    with db.tx() as con:
        if status != "new":  # one finished row per (source, target, status)
            con.execute(
                "DELETE FROM webmentions_in WHERE source = ? AND target = ? AND status = ? "
                "AND id != ?",
                (source, target, status, row_id),
            )
        con.execute(
            "UPDATE webmentions_in SET status = ?, error = ?, tries = tries + 1, next_try = ? "
            "WHERE id = ?",
            (status, error[:500], next_try, row_id),
        )


def _remove(ctx: Context, slug: str, cid: str) -> bool:
    found = ctx.comments.get(cid)
    if found is None:
        return False
    ctx.comments.delete(cid)
    ctx.mark_dirty(found[0])
    if found[1].status == "approved" and found[1].type == "reply":
        queue_salmention(ctx.db, found[0])
    return True


async def verify(ctx: Context, source: str, target: str) -> str:
    """Fetch ``source`` and store, update or remove the comment for (source, target).

    Returns "" when a comment was stored, else why not (kept in ``webmentions_in.error``).

    Raises:
        _Retry: a transient failure (timeout, connection error, 5xx, 408, 429).
    """
    reason, slug = validate(ctx, source, target)
    if reason is not None:
        return reason
    post_url = ctx.config.post_url(slug)
    cid = comment_id("webmention", f"{source} {post_url}")
    try:
        page = await ctx.fetcher.get(source, accept=SOURCE_ACCEPT)
    except BlockedAddressError as exc:
        return f"source refused: {exc}"
    except FetchError as exc:
        if exc.status is not None:
            return f"source unusable: {exc}"  # e.g. too large: retrying will not help
        raise _Retry(str(exc)) from None
    if page.status in (404, 410):
        _remove(ctx, slug, cid)
        return f"source answered HTTP {page.status}: mention removed"
    if page.status in TRANSIENT_STATUSES:
        raise _Retry(f"source answered HTTP {page.status}")
    if not page.ok:
        return f"source answered HTTP {page.status}"
    if not links_to(page.text, page.content_type, target, page.url):
        _remove(ctx, slug, cid)
        return "source does not link to target"
    if moderation.is_rejected(ctx.db, cid):
        return "rejected by the owner"
    comment = await _comment_from(ctx, page.url, page.text, page.content_type, source, slug, cid)
    if comment is None:
        return "source is blocked"
    existing = ctx.comments.get(cid)
    if existing is not None:
        old = existing[1]
        changed = (old.content, old.type, old.author) != (
            comment.content,
            comment.type,
            comment.author,
        )
        comment = replace(
            comment,
            published=old.published,
            status=old.status,
            updated=comment.updated or (dt.datetime.now(dt.UTC) if changed else old.updated),
        )
        if comment == old:
            return ""
    ctx.comments.write(slug, comment)
    ctx.mark_dirty(slug)
    if comment.status == "approved" and comment.type == "reply":
        queue_salmention(ctx.db, slug)
    return ""


async def _comment_from(
    ctx: Context, final_url: str, text: str, content_type: str, source: str, slug: str, cid: str
) -> Comment | None:
    post_url = ctx.config.post_url(slug)
    targets = [post_url, ctx.config.post_ap_id(slug)]
    if content_type in mf2.HTML_TYPES:
        # Parsing is CPU work on a stranger's markup: off the event loop, after a linear
        # pre-scan that refuses HTML bombs (mf2.check_complexity).
        found = await anyio.to_thread.run_sync(mf2.interpret, text, final_url, targets)
        author = found.author
        if found.author_page:
            author = await mf2.resolve_author(ctx.fetcher, found.author_page) or author
        kind, in_reply_to = _nest(ctx, slug, found.type, found.in_reply_to)
        content = ""
        if kind in ("reply", "mention"):
            body = found.content_html
            if found.name and kind == "reply":
                body = f"<p><strong>{_escape(found.name)}</strong></p>{body}"
            content = moderation.sanitize_html(body, final_url)
        published = moderation.parse_time(found.published)
        updated = moderation.parse_time(found.updated)
    else:
        author, kind, in_reply_to, content = None, "mention", "", ""
        published = updated = None
    domain = urlsplit(source).hostname or source
    name = moderation.clean_text(author.name if author else "") or domain
    author_url = moderation.absolute(final_url, author.url if author else "")
    photo = moderation.absolute(final_url, author.photo if author else "")
    comment = Comment(
        id=cid,
        type=kind,
        protocol="webmention",
        source=source,
        target=post_url,
        author=CommentAuthor(
            name=name,
            url=author_url or f"{urlsplit(source).scheme}://{urlsplit(source).netloc}/",
            photo=photo,
        ),
        content=content,
        published=published or dt.datetime.now(dt.UTC),
        updated=updated,
        status=moderation.initial_status(ctx, None),
        in_reply_to=in_reply_to,
    )
    if moderation.is_comment_blocked(ctx.db, comment):
        return None
    return comment


def _escape(text: str) -> str:
    import html

    return html.escape(moderation.clean_text(text, 300))


def _nest(ctx: Context, slug: str, kind: str, in_reply_to: list[str]) -> tuple[str, str]:
    """A reply to one of the post's comments (not to the post itself) is nested under it."""
    if kind not in ("reply", "mention") or not in_reply_to:
        return kind, ""
    post = {
        mf2.normalize_url(ctx.config.post_url(slug)),
        mf2.normalize_url(ctx.config.post_ap_id(slug)),
    }
    wanted = {mf2.normalize_url(u) for u in in_reply_to} - post
    if not wanted:
        return kind, ""
    for folder, c in ctx.comments.iter_all():
        if folder != slug or c.type != "reply":
            continue
        for ref in (c.source, c.object_id):
            if ref and mf2.normalize_url(ref) in wanted:
                return "reply", ref
    return kind, ""


# ---- sending ---------------------------------------------------------------------------------


def _own(ctx: Context, url: str) -> bool:
    return ctx.config.local_path(url) is not None or (
        ctx.config.federation_url != ctx.config.base_url
        and (url + "/").startswith(ctx.config.federation_url + "/")
    )


def record_sent(db: Database, source: str, result: SendResult) -> None:
    with db.tx() as con:
        con.execute(
            "INSERT INTO webmentions_out(source, target, endpoint, status, location, error, sent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, target) DO UPDATE SET "
            "endpoint = excluded.endpoint, status = excluded.status, "
            "location = excluded.location, error = excluded.error, sent = excluded.sent",
            (
                source,
                result.target,
                result.endpoint,
                result.status,
                result.location,
                result.error or "",
                now(),
            ),
        )


async def _send_all(ctx: Context, source: str, targets: list[str]) -> list[SendResult]:
    results: dict[int, SendResult] = {}
    limiter = anyio.Semaphore(SEND_CONCURRENCY)

    async def one(i: int, target: str) -> None:
        async with limiter:
            result = await send_webmention(ctx.fetcher, source, target)
        record_sent(ctx.db, source, result)
        results[i] = result

    async with anyio.create_task_group() as tg:
        for i, target in enumerate(targets):
            tg.start_soon(one, i, target)
    return [results[i] for i in range(len(targets))]


async def send_for_post(
    ctx: Context, source_url: str, html: str, old_links: list[str]
) -> list[SendResult]:
    """Send webmentions from ``source_url`` to every link of ``html`` and to each of
    ``old_links`` no longer in it; links to this site are skipped.  Never raises for
    network trouble: each failure is in its ``SendResult`` (and in ``webmentions_out``)."""
    new = find_links(html, source_url)
    targets = new + [link for link in old_links if link not in new]
    targets = [t for t in dict.fromkeys(targets) if not _own(ctx, t)]
    return await _send_all(ctx, source_url, targets)


def list_sent(db: Database) -> list[dict[str, Any]]:
    """Sent webmentions, newest first, for ``indiebridge webmentions``."""
    rows = db.query("SELECT * FROM webmentions_out ORDER BY sent DESC, source, target")
    return [
        {
            "source": r["source"],
            "target": r["target"],
            "endpoint": r["endpoint"],
            "status": r["status"],
            "location": r["location"],
            "error": r["error"],
            "ok": not r["error"] and r["status"] is not None and 200 <= r["status"] < 300,
            "sent": dt.datetime.fromtimestamp(r["sent"], dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }
        for r in rows
    ]


# ---- Salmention ------------------------------------------------------------------------------


def _read_queue(db: Database) -> dict[str, float]:
    raw = db.get_meta(SALMENTION_KEY)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def queue_salmention(db: Database, slug: str) -> None:
    """Note that ``slug``'s replies changed; ``run_due_salmentions`` sends after the rebuild."""
    with db.tx() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (SALMENTION_KEY,)).fetchone()
        try:
            queue = json.loads(row["value"]) if row else {}
        except ValueError:
            queue = {}
        if not isinstance(queue, dict):
            queue = {}
        queue[slug] = time.time()
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


async def run_due_salmentions(ctx: Context, max_wait: float = SALMENTION_MAX_WAIT) -> int:
    """Send queued Salmentions whose post page was rebuilt (or waited ``max_wait``)."""
    sent = 0
    for slug, queued in _read_queue(ctx.db).items():
        page = ctx.config.output_dir / "posts" / slug / "index.html"
        try:
            rebuilt = page.stat().st_mtime >= queued
        except OSError:
            rebuilt = False
        if not rebuilt and time.time() - queued < max_wait:
            continue
        if _take(ctx.db, slug, queued):
            await salmention(ctx, slug)
            sent += 1
    return sent


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
    return [t for t in dict.fromkeys(targets) if _is_http(t) and not _own(ctx, t)]


async def salmention(ctx: Context, slug: str) -> list[SendResult]:
    """Re-send webmentions from the post's URL to what it replies to and links, so
    upstream pages refresh the nested comments they show.  Never raises for network
    trouble."""
    targets = await _post_targets(ctx, slug)
    if not targets:
        return []
    return await _send_all(ctx, ctx.config.post_url(slug), targets)
