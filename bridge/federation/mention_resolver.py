"""Resolving the ``@user@host`` mentions of posts at publish time, and who they reach.

``resolve(ctx, posts)`` looks up every handle ``bridge.site.mentions`` finds in the posts
that the cache does not hold (or holds past its expiry): WebFinger
(``webfinger_client.resolve_handle``, through the SSRF-guarded fetcher) gives the actor
id, the actor document gives its profile ``url`` and ``inbox``.  The answers go to the
``mention_cache`` table, which the build reads, so ``build`` and previews never touch the
network.  A handle that cannot be resolved is reported once per file, one line each, and
stays plain text.

Mastodon resolves a mention the same way (WebFinger, then the actor's ``self`` link;
https://docs.joinmastodon.org/spec/webfinger/), tags it as a ``Mention`` whose ``href`` is
the actor id, addresses the account in ``cc`` and delivers the status to its inbox as
well as to followers (https://docs.joinmastodon.org/spec/activitypub/, "Mention"; our
reading of its delivery as the same).  ``recipients`` remembers those inboxes per post,
so the Update and the Delete of a post reach everyone its earlier versions mentioned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from bridge.errors import BridgeError, FetchError
from bridge.federation import quoting, webfinger_client
from bridge.federation.context import Context
from bridge.site import mentions
from bridge.site.parse_cache import might_mention
from bridge.site.posts import Post

log = logging.getLogger("indiebridge.publish")

CACHE_SECONDS = 7 * 24 * 3600  # a handle is looked up again after a week
MAX_URL = 2048  # each URL stored from a remote answer


def _cached(ctx: Context) -> dict[str, float]:
    rows = ctx.db.query("SELECT handle, expires FROM mention_cache")
    return {str(r["handle"]): float(r["expires"]) for r in rows}


async def resolve_handle(ctx: Context, handle: str) -> mentions.Account:
    """WebFinger and the actor document of ``handle``; ``BridgeError`` when either fails."""
    actor_id = await webfinger_client.resolve_handle(
        ctx.fetcher, handle, allow_private=ctx.config.allow_private_addresses
    )
    actor = await ctx.actors.get(actor_id)
    profile = actor.url if actor.url.startswith(("https://", "http://")) else actor.id
    for url in (actor.id, profile, actor.inbox):
        if len(url) > MAX_URL or not url.startswith(("https://", "http://")):
            raise FetchError(f"{actor_id}: not an http(s) URL of at most {MAX_URL} characters")
    return mentions.Account(mentions.normalise(handle), actor.id, profile, actor.inbox)


def store(ctx: Context, account: mentions.Account, *, now: float | None = None) -> None:
    moment = time.time() if now is None else now
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO mention_cache(handle, actor_id, profile_url, inbox, fetched, expires) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(handle) DO UPDATE SET "
            "actor_id = excluded.actor_id, profile_url = excluded.profile_url, "
            "inbox = excluded.inbox, fetched = excluded.fetched, expires = excluded.expires",
            (
                account.handle,
                account.actor_id,
                account.profile_url,
                account.inbox,
                moment,
                moment + CACHE_SECONDS,
            ),
        )


async def resolve(ctx: Context, posts: Sequence[Post]) -> tuple[int, list[str]]:
    """Look up the handles of ``posts`` missing from the cache or expired.

    Returns how many entries were added or changed (the caller rebuilds when any was)
    and one warning per handle that could not be resolved, naming the post's file.
    The posts quoted with ``quote_of`` are fetched too (``quoting.fetch_quoted``), with
    their changes and warnings in the counts.
    An expired entry that cannot be refreshed is kept: a stale link beats none.
    """
    cached = _cached(ctx)
    known = mentions.read_cache(ctx.config) if cached else {}
    now = time.time()
    own = mentions.normalise(ctx.config.handle)  # the blog's own handle is no mention
    changed, warnings = 0, []
    tried: dict[str, str | None] = {}  # handle -> error, None when resolved
    for post in posts:
        if not might_mention(post):  # no @: a cached post's HTML is not even read
            continue
        for handle in mentions.find_handles(post.html):
            if handle == own or (handle in cached and cached[handle] > now):
                continue
            if handle not in tried:
                try:
                    account = await resolve_handle(ctx, handle)
                except BridgeError as exc:
                    tried[handle] = str(exc)
                else:
                    tried[handle] = None
                    if known.get(handle) != account:
                        changed += 1
                    store(ctx, account, now=now)
            error = tried[handle]
            if error is not None and handle not in cached:
                warnings.append(f"{post.source}: mention {handle} not resolved ({error})")
    for line in warnings:
        log.warning("%s", line)
    # The posts quoted with quote_of are looked up at the same moment, for the same reason.
    quoted, unfetched = await quoting.fetch_quoted(ctx, posts)
    return changed + quoted, warnings + unfetched


def mentioned_inboxes(ctx: Context, obj: dict[str, Any]) -> list[str]:
    """The inboxes of the accounts ``obj`` tags as mentioned in its text (cache lookup)."""
    tags = obj.get("tag")
    hrefs = {
        str(t.get("href"))
        for t in (tags if isinstance(tags, list) else [])
        if isinstance(t, dict) and t.get("type") == "Mention"
    }
    if not hrefs:
        return []
    rows = ctx.db.query("SELECT actor_id, inbox FROM mention_cache")
    return sorted({str(r["inbox"]) for r in rows if r["actor_id"] in hrefs})


def remember(ctx: Context, slug: str, inboxes: Sequence[str]) -> None:
    """Record that ``slug`` was sent to ``inboxes`` because it mentioned their accounts."""
    if not inboxes:
        return
    with ctx.db.tx() as con:
        con.executemany(
            "INSERT OR IGNORE INTO mention_recipients(slug, inbox) VALUES (?, ?)",
            [(slug, inbox) for inbox in inboxes],
        )


def recipients(ctx: Context, slug: str) -> list[str]:
    """Every inbox a version of ``slug`` went to for a mention (its Update and Delete
    reach them too, so an edit that drops a mention still corrects their copy)."""
    rows = ctx.db.query("SELECT inbox FROM mention_recipients WHERE slug = ?", (slug,))
    return [str(r["inbox"]) for r in rows]
