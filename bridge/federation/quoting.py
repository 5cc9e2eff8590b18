"""Quoting from our side (front matter ``quote_of: URL``, FEP-044f as Mastodon 4.5 does it).

Three steps, none of them in the build:

1. ``fetch_quoted(ctx, posts)``, before the build of a publish (next to the mentions):
   a signed GET of each quoted post missing from ``quote_cache`` or expired, through the
   SSRF-guarded fetcher (``Actors.fetch_document``: the id must be on the origin that
   served it).  It must be a post (``QUOTABLE``) attributed to an actor of its own
   server; its card (author, avatar, sanitised content, date, link) is stored, bounded
   (``MAX_CACHE`` rows, ``quote_card.MAX_CARD_CONTENT`` characters), for the build.
2. ``request(ctx, post, obj)``, when publish sends the post: a ``QuoteRequest`` with
   ``actor`` = us, ``object`` = the quoted post and ``instrument`` = our post (embedded,
   as in the FEP's example) goes to the quoted author's inbox through the delivery
   queue, once per (post, quoted post); ``quotes_out`` remembers it as ``pending``.
3. ``on_answer`` (inbox hook for ``Accept`` and ``Reject``): an answer from the quoted
   author to one of our requests.  ``Reject`` -> ``rejected``.  ``Accept`` carries
   ``result`` = the ``QuoteAuthorization`` stamp, which is fetched from its origin and
   must have ``attributedTo`` = the quoted author, ``interactionTarget`` = the quoted
   post and ``interactingObject`` = our post, on the quoted author's server (Mastodon
   requires the same host; FEP-044f: the stamp must be dereferenceable).  Then
   ``accepted`` with the stamp; the post is rebuilt (``mark_dirty``) so its object
   carries ``quoteAuthorization`` (``bridge.site.quote_card``), and the next publish
   sends the Update.  ``on_stamp_delete``: a ``Delete`` of that stamp by its author
   withdraws the approval (``revoked``, shown like a rejection).

Sources: FEP-044f (codeberg.org/fediverse/fep, fep/044f/fep-044f.md, "QuoteRequest",
"QuoteAuthorization", "Revoking"); Mastodon's documentation ``spec/activitypub.md``
(quote posts, 4.5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from bridge.errors import BridgeError, FetchError
from bridge.federation import delivery
from bridge.federation.actors import as_list, first_id, same_origin
from bridge.federation.context import Context
from bridge.site import proofs, quote_card, quote_policy
from bridge.site.posts import Post
from bridge.site.sanitize import clean_text, http_url

log = logging.getLogger("indiebridge.publish")

QUOTABLE = frozenset({"Note", "Article", "Page", "Question", "Image", "Video", "Audio", "Event"})
CACHE_SECONDS = 24 * 3600  # a quoted post is fetched again after a day
MAX_CACHE = 2000  # rows of quote_cache; the oldest go first
MAX_URL = 2048


def _types(doc: dict[str, Any]) -> set[str]:
    return {t for t in as_list(doc.get("type")) if isinstance(t, str)}


def _url(value: Any) -> str:
    """The first http(s) href of a ``url`` (string, Link or list), bounded; else ""."""
    for item in as_list(value):
        href = item.get("href") if isinstance(item, dict) else item
        url = http_url(href)
        if url and len(url) <= MAX_URL:
            return url
    return ""


def _content(doc: dict[str, Any]) -> str:
    content = doc.get("content")
    if not isinstance(content, str):
        mapped = doc.get("contentMap")
        values = (
            [v for v in mapped.values() if isinstance(v, str)] if isinstance(mapped, dict) else []
        )
        content = values[0] if values else ""
    return content


async def fetch_card(ctx: Context, url: str) -> tuple[str, str, dict[str, str]]:
    """(object id, author id, card) of the post at ``url``; ``BridgeError`` when it is
    unreachable, not a post, or attributed to an actor of another server."""
    doc = await ctx.actors.fetch_document(url)
    object_id = str(doc["id"])
    if not _types(doc) & QUOTABLE:
        kind = "/".join(sorted(_types(doc))) or "document without a type"
        raise FetchError(f"{url}: a {kind}, not a post that can be quoted")
    author_id = first_id(doc.get("attributedTo"))
    if not author_id or not same_origin(author_id, object_id) or len(object_id) > MAX_URL:
        raise FetchError(f"{url}: not attributed to an actor of its own server")
    actor = await ctx.actors.get(author_id)
    if len(actor.id) > MAX_URL:
        raise FetchError(f"{author_id}: an actor id longer than {MAX_URL} characters")
    published = doc.get("published")
    card = {
        "html_url": _url(doc.get("url")) or object_id,
        "author_name": clean_text(actor.name),
        "author_handle": clean_text(actor.handle),
        "author_url": _url(actor.url) or actor.id,
        "avatar": _url(actor.icon),
        "content": quote_card.sanitised_content(_content(doc), url),
        "published": published[:40] if isinstance(published, str) else "",
    }
    return object_id, actor.id, card


def store(ctx: Context, url: str, object_id: str, author_id: str, card: dict[str, str]) -> None:
    moment = time.time()
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO quote_cache(url, object_id, author_id, card, fetched, expires) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET "
            "object_id = excluded.object_id, author_id = excluded.author_id, "
            "card = excluded.card, fetched = excluded.fetched, expires = excluded.expires",
            (url, object_id, author_id, quote_card.card_json(card), moment, moment + CACHE_SECONDS),
        )
        con.execute(
            "DELETE FROM quote_cache WHERE url NOT IN "
            "(SELECT url FROM quote_cache ORDER BY fetched DESC LIMIT ?)",
            (MAX_CACHE,),
        )


async def fetch_quoted(ctx: Context, posts: Sequence[Post]) -> tuple[int, list[str]]:
    """Fetch the posts quoted by ``posts`` that the cache lacks or holds past expiry.

    Returns how many cards were added or changed (the caller rebuilds when any was) and
    one warning per quoted post that could not be fetched, naming the post's file.  An
    expired card that cannot be refreshed is kept.
    """
    rows = ctx.db.query("SELECT url, card, expires FROM quote_cache")
    cached = {str(r["url"]): (str(r["card"]), float(r["expires"])) for r in rows}
    now = time.time()
    changed, warnings = 0, []
    tried: dict[str, str | None] = {}
    for post in posts:
        url = post.quote_of
        if not url or (url in cached and cached[url][1] > now):
            continue
        if url not in tried:
            try:
                object_id, author_id, card = await fetch_card(ctx, url)
            except BridgeError as exc:
                tried[url] = str(exc)
            else:
                tried[url] = None
                if url not in cached or cached[url][0] != quote_card.card_json(card):
                    changed += 1
                store(ctx, url, object_id, author_id, card)
        error = tried[url]
        if error is not None and url not in cached:
            warnings.append(f"{post.source}: quote_of {url} not fetched ({error}); a plain link")
    for line in warnings:
        log.warning("%s", line)
    return changed, warnings


def author_inboxes(ctx: Context, post: Post) -> list[str]:
    """The quoted author's inbox for the Create and Update of a quote post (Mastodon
    delivers a quote to the quoted account, which needs the Update that brings the
    stamp); empty when the quoted post was never fetched."""
    if not post.quote_of:
        return []
    row = ctx.db.one("SELECT author_id FROM quote_cache WHERE url = ?", (post.quote_of,))
    actor = ctx.actors.cached(str(row["author_id"])) if row is not None else None
    return [actor.shared_inbox or actor.inbox] if actor is not None else []


def request_id(ctx: Context, slug: str, quoted: str) -> str:
    digest = hashlib.sha256(f"{slug}\0{quoted}".encode()).hexdigest()[:16]
    return f"{ctx.config.actor_id}#quote-requests/{digest}"


def quote_request(
    ctx: Context, rid: str, quoted: str, author_id: str, obj: dict[str, Any]
) -> dict[str, Any]:
    """The ``QuoteRequest`` for our post ``obj`` quoting ``quoted`` (FEP-044f's shape)."""
    instrument = {k: v for k, v in obj.items() if k != "@context"}
    return {
        "@context": quote_policy.CONTEXT,
        "id": rid,
        "type": "QuoteRequest",
        "actor": ctx.config.actor_id,
        "to": [author_id],
        "object": quoted,
        "instrument": instrument,
    }


async def request(ctx: Context, post: Post, obj: dict[str, Any]) -> int:
    """Queue a ``QuoteRequest`` for ``post`` unless one went out for the same quoted post;
    returns the number of deliveries queued (0 or 1)."""
    if not post.quote_of:
        return 0
    row = ctx.db.one("SELECT object_id, author_id FROM quote_cache WHERE url = ?", (post.quote_of,))
    if row is None:
        return 0  # never fetched: the post links it and asks nothing
    quoted, author_id = str(row["object_id"]), str(row["author_id"])
    asked = ctx.db.one("SELECT quoted FROM quotes_out WHERE slug = ?", (post.slug,))
    if asked is not None and asked["quoted"] == quoted:
        return 0
    try:
        author = await ctx.actors.get(author_id)
    except BridgeError as exc:
        log.warning("%s: quote request to %s not sent (%s)", post.source, author_id, exc)
        return 0
    rid = request_id(ctx, post.slug, quoted)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    doc = quote_request(ctx, rid, quoted, author.id, obj)
    signed = proofs.sign_object(doc, ctx.keys.ed25519, ctx.config.ed25519_key_id, moment)
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO quotes_out(slug, quoted, author_id, request_id, state, stamp, sent) "
            "VALUES (?, ?, ?, ?, 'pending', '', ?) ON CONFLICT(slug) DO UPDATE SET "
            "quoted = excluded.quoted, author_id = excluded.author_id, "
            "request_id = excluded.request_id, state = 'pending', stamp = '', "
            "sent = excluded.sent, answered = NULL",
            (post.slug, quoted, author.id, rid, time.time()),
        )
    queued = delivery.enqueue(ctx.db, signed, [author.inbox])
    ctx.wake_delivery()
    return queued


def names_our_request(ctx: Context, activity: dict[str, Any]) -> bool:
    """Whether an ``Accept``/``Reject`` names one of our QuoteRequest ids: the inbox
    stores no other (a Follow's answer means nothing to a blog that follows nobody)."""
    rid = first_id(activity.get("object")) or ""
    return rid.startswith(f"{ctx.config.actor_id}#quote-requests/")


def _answer(ctx: Context, slug: str, state: str, stamp: str = "") -> None:
    with ctx.db.tx() as con:
        con.execute(
            "UPDATE quotes_out SET state = ?, stamp = ?, answered = ? WHERE slug = ?",
            (state, stamp, time.time(), slug),
        )
    ctx.mark_dirty(slug)


async def on_answer(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """``Accept`` or ``Reject`` of one of our QuoteRequests, from the quoted author;
    anything else (not ours, forwarded, from someone else) is ignored.  A stamp that
    cannot be fetched now raises ``FetchError`` so the inbox retries later."""
    rid = first_id(activity.get("object"))
    if forwarded or not rid:
        return
    row = ctx.db.one("SELECT * FROM quotes_out WHERE request_id = ?", (rid,))
    if row is None:
        return
    slug, author_id = str(row["slug"]), str(row["author_id"])
    if first_id(activity.get("actor")) != author_id:
        log.info("answer to quote request %s not from the quoted author: ignored", rid)
        return
    if activity.get("type") == "Reject":
        _answer(ctx, slug, "rejected")
        return
    stamp_id = http_url(first_id(activity.get("result")))
    if not stamp_id or not same_origin(stamp_id, author_id):
        log.info("Accept of %s without a stamp on the author's server: ignored", rid)
        return
    stamp = await ctx.actors.fetch_document(stamp_id)
    problem = check_stamp(ctx, stamp, slug, str(row["quoted"]), author_id)
    if problem:
        log.info("stamp %s refused: %s", stamp_id, problem)
        return
    _answer(ctx, slug, "accepted", stamp_id)


def check_stamp(ctx: Context, stamp: dict[str, Any], slug: str, quoted: str, author_id: str) -> str:
    """ "" when ``stamp`` authorises our post ``slug`` to quote ``quoted``; else why not."""
    if "QuoteAuthorization" not in _types(stamp):
        return "not a QuoteAuthorization"
    if first_id(stamp.get("attributedTo")) != author_id:
        return "not attributed to the quoted author"
    if first_id(stamp.get("interactionTarget")) != quoted:
        return "its interactionTarget is not the quoted post"
    ours = first_id(stamp.get("interactingObject")) or ""
    if ctx.post_slug(ours) != slug:
        return "its interactingObject is not our post"
    return ""


async def on_stamp_delete(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """``Delete`` of a stamp we hold, by its author: the approval is withdrawn."""
    stamp_id = first_id(activity.get("object"))
    if forwarded or not stamp_id:
        return
    row = ctx.db.one("SELECT slug, author_id FROM quotes_out WHERE stamp = ?", (stamp_id,))
    if row is not None and first_id(activity.get("actor")) == row["author_id"]:
        _answer(ctx, str(row["slug"]), "revoked")
