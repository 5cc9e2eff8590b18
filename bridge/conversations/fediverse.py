"""Fediverse replies, likes and boosts become comments on the blog.

``HOOKS`` plugs into the inbox: ``inbox.default_handlers(conversation=HOOKS)``.  Each hook
is ``async (ctx, activity, forwarded) -> None``; the inbox has verified the signature and
checked that the signer is the actor (or flagged the activity ``forwarded``).

* **Create** of a Note, Article, Page or Question whose ``inReplyTo`` is one of our posts
  (HTML URL or ActivityStreams id) or a comment we show -> a ``reply`` comment under the
  post (nested replies keep the parent in ``in_reply_to``).  Only public or unlisted
  objects become comments: a followers-only or direct reply, and any other object that
  mentions or addresses us, becomes a private row in ``notifications`` for the owner.
  A quote post of one of ours (Misskey ``_misskey_quote``, ``quoteUrl``, FEP-e232
  ``quote``) is a public ``mention``.
* **Update** of a comment (same object id, same author) edits it; **Update** of the
  actor refreshes the cached actor and the author shown on its comments.
* **Delete** of a comment by its author removes it (someone else's Delete changes
  nothing); an actor deleting itself loses all its comments and private mentions.
* **Like** (also Misskey reactions and ``EmojiReact``) -> ``like``; **Announce** ->
  ``repost``; **Dislike** is ignored.  A reaction's id is derived from (kind, actor,
  post), so **Undo** finds it by the embedded activity or by (actor, object); an Undo
  naming only the activity id finds it through the stored ``object_id``.

Trust: an embedded object is used only when it is on the actor's origin and attributed
to the actor; otherwise (and always for a ``forwarded`` activity) the object is fetched
from its own origin with ``ctx.actors.fetch_document``.  A ``FetchError`` from fetching
an author or object propagates so the inbox retries later; 404/410 drop the activity.

Comments under ``comments_policy`` start ``approved`` or ``pending``
(``moderation.initial_status``).  Every change calls ``ctx.mark_dirty(slug)``; a change to
an approved reply also queues a Salmention (``webmentions.queue_salmention``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bridge.conversations import moderation, webmentions
from bridge.db import now
from bridge.errors import BridgeError, FetchError
from bridge.federation import followers
from bridge.federation.actors import RemoteActor, as_list, first_id, parse_actor, same_origin
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor

log = logging.getLogger("indiebridge.conversations")

Hook = Callable[[Context, dict[str, Any], bool], Awaitable[None]]

PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})
REPLY_TYPES = frozenset({"Note", "Article", "Page", "Question"})
ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
LIKE_TYPES = frozenset({"Like", "EmojiReact", "EmojiReaction"})
QUOTE_KEYS = ("quote", "quoteUrl", "quoteUri", "_misskey_quote")
MAX_ATTACHMENTS = 4


# ---- reading activities ----------------------------------------------------------------------


def _text_value(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _content(obj: dict[str, Any]) -> str:
    """``content``, else the first ``contentMap`` value (raw HTML)."""
    content = obj.get("content")
    if isinstance(content, str) and content.strip():
        return content
    cmap = obj.get("contentMap")
    if isinstance(cmap, dict):
        for value in cmap.values():
            if isinstance(value, str) and value.strip():
                return value
    name = obj.get("name")
    return html.escape(name) if isinstance(name, str) else ""


def _url_of(value: Any) -> str:
    """The first http(s) URL of a ``url`` value: a string, a Link, or a list of either
    (an HTML link preferred)."""
    candidates: list[tuple[int, str]] = []
    for item in as_list(value):
        if isinstance(item, str):
            candidates.append((1, item))
        elif isinstance(item, dict):
            href = item.get("href") or item.get("id")
            if isinstance(href, str):
                kind = str(item.get("mediaType") or item.get("mimeType") or "")
                candidates.append((0 if kind == "text/html" else 1, href))
    for _, url in sorted(candidates, key=lambda c: c[0]):
        if moderation.http_url(url):
            return url.strip()
    return ""


def _audience(obj: dict[str, Any], activity: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for doc in (obj, activity):
        for key in ("to", "cc", "audience"):
            out.update(x for x in (first_id(v) for v in as_list(doc.get(key))) if x)
    return out


def is_public(obj: dict[str, Any], activity: dict[str, Any]) -> bool:
    return bool(_audience(obj, activity) & PUBLIC)


def mentions_us(ctx: Context, obj: dict[str, Any], activity: dict[str, Any]) -> bool:
    me = ctx.config.actor_id
    if me in _audience(obj, activity):
        return True
    for tag in as_list(obj.get("tag")) + as_list(activity.get("tag")):
        if isinstance(tag, dict) and tag.get("type") == "Mention" and tag.get("href") == me:
            return True
    return False


def _attachments_html(obj: dict[str, Any]) -> str:
    """Media of a reply as plain links (the theme shows no remote images)."""
    links = []
    for item in as_list(obj.get("attachment"))[:MAX_ATTACHMENTS]:
        if not isinstance(item, dict):
            continue
        url = _url_of(item.get("url"))
        if not url or item.get("type") in ("PropertyValue", "Link"):
            continue
        label = _text_value(item.get("name")) or _text_value(item.get("summary"))
        kind = str(item.get("type") or "attachment").lower()
        text = f"{kind}: {label}" if label else kind
        links.append(f'<a href="{html.escape(url)}">{html.escape(text)}</a>')
    return f"<p>{' · '.join(links)}</p>" if links else ""


def comment_html(obj: dict[str, Any]) -> str:
    """The sanitised content of a remote object: content warning, text, media links."""
    parts = []
    summary = obj.get("summary")
    if isinstance(summary, str) and summary.strip():
        warning = moderation.plain_text(summary, 300)
        parts.append(f"<p><strong>Content warning: {html.escape(warning)}</strong></p>")
    parts.append(_content(obj))
    parts.append(_attachments_html(obj))
    return moderation.sanitize_html("".join(parts))


def author_of(actor: RemoteActor) -> CommentAuthor:
    return CommentAuthor(
        name=moderation.clean_text(actor.name) or moderation.clean_text(actor.handle),
        url=moderation.http_url(actor.url) or moderation.http_url(actor.id),
        photo=moderation.http_url(actor.icon),
        handle=moderation.clean_text(actor.handle),
    )


async def _actor(ctx: Context, actor_id: str) -> RemoteActor | None:
    """The actor from the cache (the inbox just verified its key), else fetched; None when
    it cannot be had (used where a missing actor means 'nothing to do')."""
    cached = ctx.actors.cached(actor_id)
    if cached is not None:
        return cached
    try:
        return await ctx.actors.get(actor_id)
    except FetchError as exc:
        log.info("cannot fetch actor %s: %s", actor_id, exc)
        return None


def _trusted_embedded(obj: Any, actor_id: str) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return False
    author = first_id(obj.get("attributedTo")) or actor_id
    return author == actor_id and same_origin(obj["id"], actor_id)


async def _object(ctx: Context, activity: dict[str, Any], forwarded: bool) -> dict[str, Any] | None:
    """The activity's object, fetched from its origin unless the embedded copy is trusted.

    Returns None when it is gone (404/410) or has no id; other FetchErrors propagate.
    """
    actor_id = first_id(activity.get("actor")) or ""
    obj = activity.get("object")
    if not forwarded and _trusted_embedded(obj, actor_id):
        assert isinstance(obj, dict)
        return obj
    obj_id = first_id(obj)
    if not obj_id or not moderation.http_url(obj_id):
        return None
    try:
        return await ctx.actors.fetch_document(obj_id)
    except FetchError as exc:
        if exc.status in (404, 410):
            return None
        raise


# ---- finding what an activity refers to ------------------------------------------------------


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


def _quoted_post(ctx: Context, obj: dict[str, Any]) -> str | None:
    for key in QUOTE_KEYS:
        ref = first_id(obj.get(key))
        if ref:
            slug = ctx.post_slug(ref)
            if slug is not None:
                return slug
    return None


def _reaction_id(kind: str, actor_id: str, target: str) -> str:
    return comment_id("activitypub", f"{kind} {actor_id} {target}")


def _changed(ctx: Context, slug: str, comment: Comment) -> None:
    ctx.mark_dirty(slug)
    if comment.status == "approved" and comment.type == "reply":
        webmentions.queue_salmention(ctx.db, slug)


def _blocked(ctx: Context, actor: RemoteActor) -> bool:
    return followers.is_blocked(ctx.db, actor.id, actor.handle)


# ---- Create ----------------------------------------------------------------------------------


async def on_create(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    obj = await _object(ctx, activity, forwarded)
    if obj is None or obj.get("type") not in REPLY_TYPES:
        return
    obj_id = str(obj["id"])
    author_id = first_id(obj.get("attributedTo")) or first_id(activity.get("actor"))
    if not author_id or not same_origin(author_id, obj_id):
        return  # an object may only be attributed to an actor of its own server
    cid = comment_id("activitypub", obj_id)
    if moderation.is_rejected(ctx.db, cid):
        return
    reply_to = first_id(obj.get("inReplyTo"))
    parent = _parent(ctx, reply_to) if reply_to else None
    quoted = None if parent else _quoted_post(ctx, obj)
    public = is_public(obj, activity)
    if (parent is None and quoted is None) or not public:
        if mentions_us(ctx, obj, activity) or parent is not None or quoted is not None:
            await _notify(ctx, obj, author_id)
        return
    actor = await ctx.actors.get(author_id)
    if _blocked(ctx, actor):
        return
    slug, in_reply_to = parent if parent is not None else (str(quoted), "")
    if ctx.comments.get(cid) is not None:
        return  # a Create for a known object is a duplicate; edits come as Update
    published = moderation.parse_time(obj.get("published")) or dt.datetime.now(dt.UTC)
    comment = Comment(
        id=cid,
        type="reply" if parent is not None else "mention",
        protocol="activitypub",
        source=_url_of(obj.get("url")) or obj_id,
        target=ctx.config.post_url(slug),
        author=author_of(actor),
        content=comment_html(obj),
        published=published,
        updated=moderation.parse_time(obj.get("updated")),
        status=moderation.initial_status(ctx, actor.id),
        in_reply_to=in_reply_to,
        object_id=obj_id,
    )
    ctx.comments.write(slug, comment)
    _changed(ctx, slug, comment)


async def _notify(ctx: Context, obj: dict[str, Any], author_id: str) -> None:
    """A private mention or a non-public reply: for the owner only, never on the site."""
    actor = await _actor(ctx, author_id)
    if actor is not None and _blocked(ctx, actor):
        return
    obj_id = str(obj["id"])
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO notifications(id, type, actor, url, content, received) "
            "VALUES (?, 'mention', ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "url = excluded.url, content = excluded.content",
            (
                comment_id("activitypub", obj_id),
                author_id,
                _url_of(obj.get("url")) or obj_id,
                comment_html(obj),
                now(),
            ),
        )


# ---- Update ----------------------------------------------------------------------------------


async def on_update(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    actor_id = first_id(activity.get("actor"))
    raw = activity.get("object")
    if not actor_id:
        return
    if isinstance(raw, dict) and raw.get("type") in ACTOR_TYPES:
        if not forwarded and raw.get("id") == actor_id:
            await _update_actor(ctx, raw)
        return
    obj = await _object(ctx, activity, forwarded)
    if obj is None or obj.get("type") not in REPLY_TYPES:
        return
    obj_id = str(obj["id"])
    author_id = first_id(obj.get("attributedTo")) or actor_id
    if author_id != actor_id and not forwarded:
        return
    cid = comment_id("activitypub", obj_id)
    actor = await _actor(ctx, author_id)
    if actor is None:
        return
    found = ctx.comments.get(cid)
    if found is None:
        _update_notification(ctx, cid, author_id, obj)
        return
    slug, old = found
    if not author_matches_or_log(old, actor):
        return
    updated = moderation.parse_time(obj.get("updated")) or dt.datetime.now(dt.UTC)
    new = replace(
        old,
        content=comment_html(obj),
        updated=updated,
        source=_url_of(obj.get("url")) or old.source,
        author=author_of(actor),
    )
    if new != old:
        ctx.comments.write(slug, new)
        _changed(ctx, slug, new)


def author_matches_or_log(comment: Comment, actor: RemoteActor) -> bool:
    if moderation.author_matches(comment, actor):
        return True
    log.warning("%s tried to change comment %s of someone else", actor.id, comment.id)
    return False


def _update_notification(ctx: Context, cid: str, actor_id: str, obj: dict[str, Any]) -> None:
    with ctx.db.tx() as con:
        con.execute(
            "UPDATE notifications SET content = ? WHERE id = ? AND actor = ?",
            (comment_html(obj), cid, actor_id),
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
            ctx.comments.write(slug, replace(comment, author=author))
            ctx.mark_dirty(slug)


# ---- Delete ----------------------------------------------------------------------------------


async def on_delete(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    actor_id = first_id(activity.get("actor"))
    obj_id = first_id(activity.get("object"))
    if forwarded or not actor_id or not obj_id:
        return
    actor = await _actor(ctx, actor_id)
    if obj_id == actor_id:
        remove_actor(ctx, actor_id, actor)
        return
    if actor is None:
        return
    cid = comment_id("activitypub", obj_id)
    found = ctx.comments.get(cid)
    if found is not None and author_matches_or_log(found[1], actor):
        ctx.comments.delete(cid)
        _changed(ctx, found[0], found[1])
    with ctx.db.tx() as con:
        con.execute("DELETE FROM notifications WHERE id = ? AND actor = ?", (cid, actor_id))


def remove_actor(ctx: Context, actor_id: str, actor: RemoteActor | None) -> int:
    """Remove everything an actor left here (it deleted its account); returns a count."""
    removed = 0
    if actor is not None:
        for slug, comment in list(ctx.comments.iter_all()):
            if moderation.author_matches(comment, actor):
                ctx.comments.delete(comment.id)
                _changed(ctx, slug, comment)
                removed += 1
    with ctx.db.tx() as con:
        cur = con.execute("DELETE FROM notifications WHERE actor = ?", (actor_id,))
    return removed + cur.rowcount


# ---- Like, Announce, Undo --------------------------------------------------------------------


def _reaction_kind(activity_type: Any) -> str | None:
    if activity_type in LIKE_TYPES:
        return "like"
    if activity_type == "Announce":
        return "repost"
    if isinstance(activity_type, str) and activity_type.endswith("Like"):
        return "like"  # unknown Like subtypes count as likes
    return None


async def on_reaction(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Like / EmojiReact / Announce of one of our posts -> a like or repost."""
    kind = _reaction_kind(activity.get("type"))
    actor_id = first_id(activity.get("actor"))
    target = first_id(activity.get("object"))
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
    if _blocked(ctx, actor):
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
    )
    if existing is not None and existing[1] == comment:
        return
    ctx.comments.write(slug, comment)
    _changed(ctx, slug, comment)


async def on_undo(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Undo of a Like/EmojiReact/Announce: by the embedded activity's (actor, object),
    else by its id.  (Undo of a Follow never reaches this hook.)"""
    actor_id = first_id(activity.get("actor"))
    inner = activity.get("object")
    if forwarded or not actor_id:
        return
    candidates: list[str] = []
    inner_id = first_id(inner)
    if isinstance(inner, dict):
        if first_id(inner.get("actor")) not in (None, actor_id):
            return
        kind = _reaction_kind(inner.get("type"))
        target = first_id(inner.get("object"))
        slug = ctx.post_slug(target) if target else None
        if kind and slug:
            candidates.append(_reaction_id(kind, actor_id, ctx.config.post_url(slug)))
    actor = await _actor(ctx, actor_id)
    if actor is None:
        return
    for cid in candidates:
        found = ctx.comments.get(cid)
        if found is not None and author_matches_or_log(found[1], actor):
            ctx.comments.delete(cid)
            _changed(ctx, found[0], found[1])
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
            _changed(ctx, slug, comment)
            return


async def ignore(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    """Dislikes are not shown (and their Undo finds nothing)."""
    return None


HOOKS: dict[str, Hook] = {
    "Create": on_create,
    "Update": on_update,
    "Delete": on_delete,
    "Like": on_reaction,
    "EmojiReact": on_reaction,
    "Announce": on_reaction,
    "Undo": on_undo,
    "Dislike": ignore,
}
"""The conversation hooks for ``inbox.default_handlers(conversation=HOOKS)``."""
