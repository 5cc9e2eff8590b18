"""Fediverse reactions become likes and reposts: Like, EmojiReact, Announce and their Undo.

* **Like** (also Misskey reactions and ``EmojiReact``) of one of our posts -> ``like``;
  **Announce** -> ``repost``; **Dislike** is ignored.  Unknown ``...Like`` subtypes count
  as likes.
* A reaction's comment id is derived from (kind, actor, post), so a repeated Like updates
  one file, and **Undo** finds it by the embedded activity's (actor, object); an Undo
  naming only the activity id finds it through the stored ``object_id``.
* Forwarded reactions are ignored: a reaction is only believed from its own signer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from bridge.conversations import moderation
from bridge.conversations.remote_objects import actor_or_none, author_of
from bridge.conversations.replies import author_matches_or_log
from bridge.conversations.salmention import note_change
from bridge.conversations.shapes import ref, types
from bridge.federation.actors import same_origin
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.posts import Comment

__all__ = ["LIKE_TYPES", "ignore", "on_reaction", "on_undo"]

LIKE_TYPES = frozenset({"Like", "EmojiReact", "EmojiReaction"})


def _reaction_kind(activity_type: Any) -> str | None:
    kinds = types(activity_type)
    if kinds & LIKE_TYPES:
        return "like"
    if "Announce" in kinds:
        return "repost"
    if any(kind.endswith("Like") for kind in kinds):
        return "like"  # unknown Like subtypes count as likes
    return None


def _reaction_id(kind: str, actor_id: str, target: str) -> str:
    return comment_id("activitypub", f"{kind} {actor_id} {target}")


async def on_reaction(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Like / EmojiReact / Announce of one of our posts -> a like or repost."""
    kind = _reaction_kind(activity.get("type"))
    actor_id = ref(activity.get("actor"))
    target = ref(activity.get("object"))
    if forwarded or kind is None or not actor_id or not target:
        return
    slug = ctx.post_slug(target)
    if slug is None:
        return
    post_url = ctx.config.post_url(slug)
    cid = _reaction_id(kind, actor_id, post_url)
    if moderation.is_rejected(ctx.db, cid):
        return
    actor = await ctx.actors.get(actor_id)
    if moderation.actor_blocked(ctx, actor):
        return
    activity_id = activity.get("id")
    if not isinstance(activity_id, str) or not same_origin(activity_id, actor_id):
        digest = hashlib.sha256(f"{kind} {post_url}".encode()).hexdigest()[:16]
        activity_id = f"{actor_id}#{kind}-{digest}"
    existing = ctx.comments.get(cid)
    comment = Comment(
        id=cid,
        type=kind,
        protocol="activitypub",
        source=moderation.http_url(activity_id) or author_of(actor).url,
        target=post_url,
        author=author_of(actor),
        content="",
        published=(
            existing[1].published
            if existing
            else moderation.parse_time(activity.get("published")) or dt.datetime.now(dt.UTC)
        ),
        status=existing[1].status if existing else moderation.initial_status(ctx, actor.id),
        object_id=activity_id,
        actor_id=actor.id,
    )
    if existing is not None and existing[1] == comment:
        return
    ctx.comments.write(slug, comment)
    note_change(ctx, slug, comment)


async def on_undo(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Undo of a Like/EmojiReact/Announce: by the embedded activity's (actor, object),
    else by its id.  (Undo of a Follow never reaches this hook.)"""
    actor_id = ref(activity.get("actor"))
    inner = activity.get("object")
    if forwarded or not actor_id:
        return
    candidates: list[str] = []
    inner_id = ref(inner)
    if isinstance(inner, dict):
        if ref(inner.get("actor")) not in (None, actor_id):
            return
        kind = _reaction_kind(inner.get("type"))
        target = ref(inner.get("object"))
        slug = ctx.post_slug(target) if target else None
        if kind and slug:
            candidates.append(_reaction_id(kind, actor_id, ctx.config.post_url(slug)))
    actor = await actor_or_none(ctx, actor_id)
    if actor is None:
        return
    for cid in candidates:
        found = ctx.comments.get(cid)
        if found is not None and author_matches_or_log(found[1], actor):
            ctx.comments.delete(cid)
            note_change(ctx, found[0], found[1])
            return
    if not inner_id:
        return
    for slug, comment in list(ctx.comments.iter_all()):
        if (
            comment.type in ("like", "repost")
            and comment.object_id == inner_id
            and moderation.author_matches(comment, actor)
        ):
            ctx.comments.delete(comment.id)
            note_change(ctx, slug, comment)
            return


async def ignore(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Dislikes are not shown (and their Undo finds nothing)."""
    return None
