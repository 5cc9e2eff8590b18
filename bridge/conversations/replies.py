"""Fediverse replies become comments: Create, Update and Delete of remote objects.

* **Create** of a Note, Article, Page or Question whose ``inReplyTo`` is one of our posts
  (HTML URL or ActivityStreams id) or a comment we show -> a ``reply`` comment under the
  post (nested replies keep the parent in ``in_reply_to``).  Only public or unlisted
  objects become comments, judged by the object alone (``audience``): a followers-only or
  direct reply, and any other object that mentions or addresses us, becomes a private row
  in ``notifications`` for the owner.
  A quote post of one of ours (Misskey ``_misskey_quote``, ``quoteUrl``, FEP-e232
  ``quote``) is a public ``mention``.
* **Update** of a comment (same object id, same author) edits it, or takes it off the site
  when the object is no longer public; **Update** of the
  actor refreshes the cached actor and the author shown on its comments.
* **Delete** of a comment by its author removes it (someone else's Delete changes
  nothing); an actor deleting itself loses all its comments and private mentions.

An object may only be attributed to an actor of its own server.  Comments under
``comments_policy`` start ``approved`` or ``pending`` (``moderation.initial_status``); every
change goes through ``salmention.note_change``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

from bridge.conversations import emoji, moderation
from bridge.conversations.audience import is_public, mentions_us
from bridge.conversations.remote_objects import (
    MEDIA_TYPES,
    actor_or_none,
    author_of,
    comment_html,
    fetch_object,
    url_of,
)
from bridge.conversations.salmention import note_change
from bridge.conversations.shapes import ACTOR_TYPES, RemoteObject, ref, types
from bridge.db import now
from bridge.errors import BridgeError
from bridge.federation.actors import RemoteActor, parse_actor, same_origin
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.posts import Comment

__all__ = ["REPLY_TYPES", "on_create", "on_delete", "on_update", "remove_actor"]

log = logging.getLogger("indiebridge.conversations")

REPLY_TYPES = frozenset({"Note", "Article", "Page", "Question"}) | MEDIA_TYPES


def _parent(ctx: Context, ref: str) -> tuple[str, str] | None:
    """(post slug, in_reply_to) for a reply to one of our posts ("") or to a comment."""
    slug = ctx.post_slug(ref)
    if slug is not None:
        return slug, ""
    found = ctx.comments.get(comment_id("activitypub", ref))
    if found is not None and found[1].type == "reply":
        return found[0], ref
    for slug, c in ctx.comments.iter_all():
        if c.type == "reply" and ref in (c.source, c.object_id):
            return slug, ref
    return None


def _quoted_post(ctx: Context, obj: RemoteObject) -> str | None:
    for quoted in obj.quotes:
        slug = ctx.post_slug(quoted)
        if slug is not None:
            return slug
    return None


# ---- Create ----------------------------------------------------------------------------------


async def on_create(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    obj = await fetch_object(ctx, activity, forwarded)
    if obj is None or not obj.is_a(REPLY_TYPES):
        return
    obj_id = obj.id
    author_id = obj.author or ref(activity.get("actor"))
    if not author_id or not same_origin(author_id, obj_id):
        return  # an object may only be attributed to an actor of its own server
    cid = comment_id("activitypub", obj_id)
    if moderation.is_rejected(ctx.db, cid):
        return
    parent = _parent(ctx, obj.in_reply_to) if obj.in_reply_to else None
    quoted = None if parent else _quoted_post(ctx, obj)
    public = is_public(obj)
    if (parent is None and quoted is None) or not public:
        if mentions_us(ctx, obj) or parent is not None or quoted is not None:
            await _notify(ctx, obj, author_id)
        return
    actor = await ctx.actors.get(author_id)
    if moderation.actor_blocked(ctx, actor):
        return
    slug, in_reply_to = parent if parent is not None else (str(quoted), "")
    if ctx.comments.get(cid) is not None:
        return  # a Create for a known object is a duplicate; edits come as Update
    published = moderation.parse_time(obj.doc.get("published")) or dt.datetime.now(dt.UTC)
    comment = Comment(
        id=cid,
        type="reply" if parent is not None else "mention",
        protocol="activitypub",
        source=url_of(obj.doc.get("url")) or obj_id,
        target=ctx.config.post_url(slug),
        author=author_of(actor),
        content=await emoji.with_emoji(ctx, obj.doc, comment_html(obj.doc)),
        published=published,
        updated=moderation.parse_time(obj.doc.get("updated")),
        status=moderation.initial_status(ctx, actor.id),
        in_reply_to=in_reply_to,
        object_id=obj_id,
        actor_id=actor.id,
    )
    ctx.comments.write(slug, comment)
    note_change(ctx, slug, comment)


async def _notify(ctx: Context, obj: RemoteObject, author_id: str) -> None:
    """A private mention or a non-public reply: for the owner only, never on the site."""
    actor = await actor_or_none(ctx, author_id)
    if actor is not None and moderation.actor_blocked(ctx, actor):
        return
    obj_id = obj.id
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO notifications(id, type, actor, url, content, received) "
            "VALUES (?, 'mention', ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "url = excluded.url, content = excluded.content",
            (
                comment_id("activitypub", obj_id),
                author_id,
                url_of(obj.doc.get("url")) or obj_id,
                comment_html(obj.doc),
                now(),
            ),
        )


# ---- Update ----------------------------------------------------------------------------------


async def on_update(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    actor_id = ref(activity.get("actor"))
    raw = activity.get("object")
    if not actor_id:
        return
    if isinstance(raw, dict) and types(raw) & ACTOR_TYPES:
        if not forwarded and raw.get("id") == actor_id:
            await _update_actor(ctx, raw)
        return
    obj = await fetch_object(ctx, activity, forwarded)
    if obj is None or not obj.is_a(REPLY_TYPES):
        return
    obj_id = obj.id
    author_id = obj.author or actor_id
    if author_id != actor_id and not forwarded:
        return
    cid = comment_id("activitypub", obj_id)
    actor = await actor_or_none(ctx, author_id)
    if actor is None:
        return
    found = ctx.comments.get(cid)
    if found is None:
        _update_notification(ctx, cid, author_id, obj)
        return
    slug, old = found
    if not author_matches_or_log(old, actor):
        return
    if not is_public(obj):  # no longer public: off the site, and kept for the owner only
        ctx.comments.delete(cid)
        note_change(ctx, slug, old)
        await _notify(ctx, obj, author_id)
        return
    updated = moderation.parse_time(obj.doc.get("updated")) or dt.datetime.now(dt.UTC)
    new = replace(
        old,
        content=await emoji.with_emoji(ctx, obj.doc, comment_html(obj.doc), previous=old.content),
        updated=updated,
        source=url_of(obj.doc.get("url")) or old.source,
        author=author_of(actor),
        actor_id=actor.id,  # an older file without it learns its author here
    )
    if new.content != old.content:
        new = replace(new, status=moderation.status_after_edit(ctx, old))
    if new != old:
        ctx.comments.write(slug, new)
        note_change(ctx, slug, old if old.status == "approved" else new)


def author_matches_or_log(comment: Comment, actor: RemoteActor) -> bool:
    if moderation.author_matches(comment, actor):
        return True
    log.warning("%s tried to change comment %s of someone else", actor.id, comment.id)
    return False


def _update_notification(ctx: Context, cid: str, actor_id: str, obj: RemoteObject) -> None:
    with ctx.db.tx() as con:
        con.execute(
            "UPDATE notifications SET content = ? WHERE id = ? AND actor = ?",
            (comment_html(obj.doc), cid, actor_id),
        )


async def _update_actor(ctx: Context, doc: dict[str, Any]) -> None:
    """A profile change: refresh the cache and the author shown on the actor's comments."""
    old = ctx.actors.cached(str(doc["id"]))
    try:
        new = parse_actor(doc)
    except BridgeError:
        return
    if old is not None and not same_origin(old.id, new.id):
        return
    ctx.actors.store(new)
    if old is None:
        return
    author = author_of(new)
    for slug, comment in list(ctx.comments.iter_all()):
        if moderation.author_matches(comment, old) and comment.author != author:
            ctx.comments.write(slug, replace(comment, author=author, actor_id=new.id))
            ctx.mark_dirty(slug)


# ---- Delete ----------------------------------------------------------------------------------


async def on_delete(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    actor_id = ref(activity.get("actor"))
    obj_id = ref(activity.get("object"))
    if forwarded or not actor_id or not obj_id:
        return
    actor = await actor_or_none(ctx, actor_id)
    if obj_id == actor_id:
        remove_actor(ctx, actor_id, actor)
        return
    if actor is None:
        return
    cid = comment_id("activitypub", obj_id)
    found = ctx.comments.get(cid)
    if found is not None and author_matches_or_log(found[1], actor):
        ctx.comments.delete(cid)
        note_change(ctx, found[0], found[1])
    with ctx.db.tx() as con:
        con.execute("DELETE FROM notifications WHERE id = ? AND actor = ?", (cid, actor_id))


def remove_actor(ctx: Context, actor_id: str, actor: RemoteActor | None) -> int:
    """Remove everything an actor left here (it deleted its account); returns a count."""
    removed = 0
    if actor is not None:
        for slug, comment in list(ctx.comments.iter_all()):
            if moderation.author_matches(comment, actor):
                ctx.comments.delete(comment.id)
                note_change(ctx, slug, comment)
                removed += 1
    with ctx.db.tx() as con:
        cur = con.execute("DELETE FROM notifications WHERE actor = ?", (actor_id,))
    return removed + cur.rowcount
