"""Quotes of our posts (FEP-044f): answer ``QuoteRequest``, serve and revoke stamps, and
show each approved quote under the post as a "quoted by" reaction.

Flow: the inbox verifies and stores a ``QuoteRequest``; ``on_quote_request`` checks that
its ``object`` is one of our posts and that its ``instrument`` (the quote post) belongs
to the requesting actor, decides under ``quote_policy`` (``bridge.site.quote_policy``),
and queues an ``Accept`` whose ``result`` is a stamp, or a ``Reject``.  An approved quote
becomes a comment of type ``quote`` (subject to ``comments_policy`` like any reaction),
keyed by the quote post's id, so a ``Delete`` of that post or of its author removes it
through the usual conversation hooks.

Stamps live in the ``quote_stamps`` table and are served by the daemon at
``/ap/quotes/<token>.json`` (``routes``).  A stamp answers only while its quote comment
exists: once the comment is gone (removed by a moderator, its post deleted, the quoter
blocked) it answers 410 with a Tombstone, and ``revoke`` also sends ``Delete`` of the
stamp to the quoter and to our followers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bridge.conversations import moderation, replies
from bridge.conversations.remote_objects import author_of
from bridge.conversations.shapes import read_object, ref
from bridge.db import Database, now
from bridge.federation import delivery, followers, quoting
from bridge.federation.actors import same_origin
from bridge.federation.context import Context
from bridge.site import activities, proofs, quote_policy
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor

log = logging.getLogger("indiebridge.quotes")

AP_JSON = "application/activity+json"
SCHEMA = """
CREATE TABLE IF NOT EXISTS quote_stamps (
    token TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    quote_post TEXT NOT NULL,
    quoted TEXT NOT NULL,
    quoter TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
)
"""


def ensure_schema(db: Database) -> None:
    with db.tx() as con:
        con.execute(SCHEMA)


def _http(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


async def on_quote_request(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Answer a ``QuoteRequest`` for one of our posts; anything else is ignored.

    Ignored (no answer): a forwarded request, an ``object`` that is not our post, an
    ``instrument`` that is missing or not on the requesting actor's server.
    """
    actor_id = ref(activity.get("actor"))
    quoted = ref(activity.get("object"))
    instrument = activity.get("instrument")
    quote_post = _http(ref(instrument))
    if forwarded or not actor_id or not quoted or not quote_post:
        return
    if not isinstance(activity.get("id"), str) or not same_origin(quote_post, actor_id):
        log.info("QuoteRequest from %s for a post on another server: ignored", actor_id)
        return
    embedded = read_object(instrument)
    if embedded is not None and embedded.author not in (None, actor_id):
        return
    slug = ctx.post_slug(quoted)
    if slug is None:
        return
    actor = await ctx.actors.get(actor_id)
    follower = followers.get(ctx.db, actor_id)
    allowed = quote_policy.allows(
        ctx.config, is_follower=follower is not None and follower.state == "accepted"
    )
    request = dict(activity)
    request["object"] = quoted
    if not allowed:
        answer = quote_policy.answer(ctx.config, request, "Reject")
    else:
        token = quote_policy.stamp_token(quote_post, ctx.config.post_ap_id(slug))
        ensure_schema(ctx.db)
        with ctx.db.tx() as con:
            con.execute(
                "INSERT INTO quote_stamps(token, slug, quote_post, quoted, quoter, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(token) DO UPDATE SET revoked = NULL",
                (token, slug, quote_post, ctx.config.post_ap_id(slug), actor_id, now()),
            )
        _store_quote(ctx, slug, quote_post, instrument, actor_id, author_of(actor))
        stamp_id = quote_policy.stamp_url(ctx.config, token)
        answer = quote_policy.answer(ctx.config, request, "Accept", stamp_id)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    signed = proofs.sign_object(answer, ctx.keys.ed25519, ctx.config.ed25519_key_id, moment)
    delivery.enqueue(ctx.db, signed, [actor.inbox])
    ctx.wake_delivery()  # the row is already queued


def _store_quote(
    ctx: Context,
    slug: str,
    quote_post: str,
    instrument: Any,
    actor_id: str,
    author: CommentAuthor,
) -> None:
    cid = comment_id("activitypub", quote_post)
    if moderation.is_rejected(ctx.db, cid):
        return
    url = quote_post
    if isinstance(instrument, dict):
        url = moderation.http_url(activities_url(instrument.get("url"))) or quote_post
    existing = ctx.comments.get(cid)
    if existing is not None:
        # The quote post arrived first as a Create (a "mention" with its content): it
        # becomes a quote, keeping what was stored.
        comment = dataclasses.replace(existing[1], type="quote")
    else:
        comment = Comment(
            id=cid,
            type="quote",
            protocol="activitypub",
            source=url,
            target=ctx.config.post_url(slug),
            author=author,
            content="",
            published=dt.datetime.now(dt.UTC),
            status=moderation.initial_status(ctx, actor_id),
            object_id=quote_post,
        )
    if existing is None or existing[1] != comment:
        ctx.comments.write(slug, comment)
        ctx.mark_dirty(slug)


def activities_url(value: Any) -> str:
    """A ``url`` that may be a string, a Link or a list of them -> the first href."""
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("href", "")
    return value if isinstance(value, str) else ""


def current_stamp(ctx: Context, token: str) -> tuple[str, dict[str, Any]] | None:
    """("live" | "revoked", row) for a stamp token, or None if there is no such stamp."""
    ensure_schema(ctx.db)
    row = ctx.db.one("SELECT * FROM quote_stamps WHERE token = ?", (token,))
    if row is None:
        return None
    data = dict(row)
    found = ctx.comments.get(comment_id("activitypub", data["quote_post"]))
    live = (
        data["revoked"] is None
        and found is not None
        and found[1].status == "approved"
        and not followers.is_blocked(ctx.db, data["quoter"])  # blocking revokes too
    )
    return ("live" if live else "revoked"), data


def revoke(ctx: Context, token: str, moment: dt.datetime | None = None) -> bool:
    """Withdraw an approval: the stamp answers 410, the quote leaves the post, and
    ``Delete`` of the stamp goes to the quoter and our followers.  False if unknown."""
    ensure_schema(ctx.db)
    row = ctx.db.one("SELECT * FROM quote_stamps WHERE token = ?", (token,))
    if row is None:
        return False
    moment = moment or dt.datetime.now(dt.UTC).replace(microsecond=0)
    with ctx.db.tx() as con:
        con.execute("UPDATE quote_stamps SET revoked = ? WHERE token = ?", (now(), token))
    cid = comment_id("activitypub", row["quote_post"])
    if ctx.comments.delete(cid):
        ctx.mark_dirty(row["slug"])
    stamp_id = quote_policy.stamp_url(ctx.config, token)
    doc = quote_policy.revoke(ctx.config, stamp_id, row["quoter"], moment)
    signed = proofs.sign_object(doc, ctx.keys.ed25519, ctx.config.ed25519_key_id, moment)
    inboxes = [*_inbox_of(ctx, row["quoter"]), *delivery.inboxes_for_followers(ctx.db)]
    delivery.enqueue(ctx.db, signed, list(dict.fromkeys(inboxes)))
    ctx.wake_delivery()
    return True


def revoke_quote(ctx: Context, quote_post: str) -> int:
    """Revoke every live stamp given to one quote post (its comment was rejected or
    deleted by the owner); returns how many were revoked."""
    revoked = 0
    for token in stamps_for(ctx, quote_post):
        row = ctx.db.one("SELECT revoked FROM quote_stamps WHERE token = ?", (token,))
        if row is not None and row["revoked"] is None and revoke(ctx, token):
            revoked += 1
    return revoked


def stamps_for(ctx: Context, quote_post: str) -> list[str]:
    """Tokens of the stamps given to one quote post (to revoke them by its URL)."""
    ensure_schema(ctx.db)
    rows = ctx.db.query("SELECT token FROM quote_stamps WHERE quote_post = ?", (quote_post,))
    return [r["token"] for r in rows]


def _inbox_of(ctx: Context, actor_id: str) -> list[str]:
    actor = ctx.actors.cached(actor_id)
    return [actor.inbox] if actor is not None else []


def routes(ctx: Context) -> list[Route]:
    """``/ap/quotes/<token>.json``: a live stamp, 410 once revoked; mount before the
    catch-all.  Public, as FEP-044f allows, and never embedding the quote post."""
    headers = {"Access-Control-Allow-Origin": "*"}

    async def stamp(request: Request) -> Response:
        token = str(request.path_params["token"])
        found = current_stamp(ctx, token) if token.isalnum() else None
        if found is None:
            return PlainTextResponse("not found", 404)
        state, row = found
        stamp_id = quote_policy.stamp_url(ctx.config, token)
        if state == "revoked":
            moment = dt.datetime.fromtimestamp(row["revoked"] or row["created"], dt.UTC)
            tomb = activities.tombstone(stamp_id, "QuoteAuthorization", moment)
            return JSONResponse(tomb, status_code=410, media_type=AP_JSON, headers=headers)
        doc = quote_policy.stamp(ctx.config, token, row["quote_post"], row["quoted"])
        created = dt.datetime.fromtimestamp(row["created"], dt.UTC).replace(microsecond=0)
        doc = proofs.sign_object(doc, ctx.keys.ed25519, ctx.config.ed25519_key_id, created)
        return Response(json.dumps(doc, ensure_ascii=False), media_type=AP_JSON, headers=headers)

    return [Route("/ap/quotes/{token}.json", stamp, methods=["GET", "HEAD"])]


async def on_delete(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """``Delete``: what replies do with it, and the withdrawal of a stamp we were given
    for one of our own quotes (``quoting.on_stamp_delete``)."""
    await replies.on_delete(ctx, activity, forwarded)
    await quoting.on_stamp_delete(ctx, activity, forwarded)


HOOKS = {
    "QuoteRequest": on_quote_request,
    "Accept": quoting.on_answer,  # answers to our own QuoteRequests (quote_of)
    "Reject": quoting.on_answer,
    "Delete": on_delete,
}
"""Inbox hooks: ``inbox.default_handlers(conversation={**fediverse.HOOKS, **HOOKS})``."""
