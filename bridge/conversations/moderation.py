"""What may appear under a post: sanitising, the comments policy, the owner's decisions.

Everything a remote party writes passes through here before it is stored:

* ``sanitize_html`` cleans comment content with nh3 to a small allow-list (p, br, a with
  http/https/mailto links only, span, em, strong, b, i, u, del, code, pre, blockquote,
  ul, ol, li).  No attribute survives except ``href``; every link gets
  ``rel="nofollow ugc noopener"``; scripts, styles, SVG, MathML, iframes and forms are
  dropped *with* their content; relative links are resolved against the source (or
  dropped when there is none).
* author names and handles go through ``names`` (no invisible, blank or bidi control
  characters, the real host always in the handle; the theme also isolates names in
  ``<bdi>``); ``clean_text`` makes other remote text plain, short and single-line;
  ``http_url`` keeps only http(s) URLs, so no ``javascript:`` reaches an ``href`` or
  ``src`` of the theme.
* ``initial_status`` applies ``comments_policy``: ``open`` approves, ``followers``
  approves accepted followers' comments and holds others, ``manual`` holds everything,
  and under ``manual`` an edited comment is held again (``status_after_edit``).

The owner's side (``indiebridge comments ...``): ``list_comments`` (the ``--json``
shape), ``approve``, ``reject`` (deletes the file and remembers the id so a redelivery
does not bring it back), ``delete``, and ``apply_blocks`` (removes comments and private
mentions of blocked actors, handles and domains).

Each ActivityPub comment file records the remote actor id (``actor_id``) of its author,
and ``author_matches`` authorises edits, deletes and Undos against that id alone: an
actor is the author only if its id is the stored one, so another account, even one on the
same server showing the same handle, cannot change the comment.  Files written before
actor ids were recorded fall back to the old rule (the object id on the actor's origin and
the stored handle, or the profile URL, equal to the actor's) and learn their actor id at
the author's next edit or profile update.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

from bridge.conversations.names import display_name, handle_of
from bridge.conversations.salmention import note_change
from bridge.db import Database, now
from bridge.errors import BridgeError, ModerationError
from bridge.federation import followers
from bridge.federation.actors import RemoteActor, same_origin
from bridge.federation.context import Context
from bridge.site.comments import CommentStore, to_json
from bridge.site.posts import Comment
from bridge.site.sanitize import (
    clean_text,
    http_url,
    plain_text,
    sanitize_html,
)

__all__ = [
    "ModerationError",
    "actor_blocked",
    "apply_blocks",
    "approve",
    "author_matches",
    "clean_text",
    "delete",
    "http_url",
    "initial_status",
    "is_rejected",
    "list_comments",
    "list_notifications",
    "parse_time",
    "plain_text",
    "reject",
    "sanitize_html",
    "status_after_edit",
]


_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any, *, default: dt.datetime | None = None) -> dt.datetime | None:
    """A timestamp as servers write it: ``Z``, ``+00:00``, ``+0000``, ms/µs/ns, a space
    instead of ``T``, or an RFC 2822 date.  Naive times are UTC; times in the future
    (a wrong clock, or a comment trying to stay on top) become now.  Unreadable: default."""
    if not isinstance(value, str) or not value.strip():
        return default
    text = _LONG_FRACTION.sub(r"\1", value.strip())
    parsed: dt.datetime | None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    current = dt.datetime.now(dt.UTC)
    return min(parsed.astimezone(dt.UTC), current)


# ---- policy ------------------------------------------------------------------------------


def initial_status(ctx: Context, actor_id: str | None = None) -> str:
    """``approved`` or ``pending`` for a new comment by ``actor_id`` (None: not a fediverse
    actor, e.g. a webmention author) under the site's ``comments_policy``."""
    policy = ctx.config.comments_policy
    if policy == "open":
        return "approved"
    if policy == "followers" and actor_id:
        follower = followers.get(ctx.db, actor_id)
        if follower is not None and follower.state == "accepted":
            return "approved"
    return "pending"


def status_after_edit(ctx: Context, old: Comment) -> str:
    """The status of an edited comment: under ``comments_policy = "manual"`` it waits for
    approval again (the owner approved the words, not whatever they become); otherwise it
    keeps its status."""
    return "pending" if ctx.config.comments_policy == "manual" else old.status


def actor_blocked(ctx: Context, actor: RemoteActor) -> bool:
    """Whether a block covers this actor (by id, handle or domain)."""
    return followers.is_blocked(ctx.db, actor.id, actor.handle)


def author_matches(comment: Comment, actor: RemoteActor) -> bool:
    """Whether ``actor`` wrote this ActivityPub comment (see the module docstring)."""
    if comment.protocol != "activitypub":
        return False
    if comment.actor_id:
        return comment.actor_id == actor.id
    ref = comment.object_id or comment.source  # a file written before actor ids were kept
    if not ref or not same_origin(ref, actor.id):
        return False
    if comment.author.handle:
        return comment.author.handle.lower() == actor.handle.lower()
    return bool(comment.author.url) and comment.author.url == actor.url


# ---- rejections ----------------------------------------------------------------------------

_REJECTED_TABLE = (
    "CREATE TABLE IF NOT EXISTS comments_rejected (id TEXT PRIMARY KEY, created REAL NOT NULL)"
)


def _remember_rejection(db: Database, cid: str) -> None:
    with db.tx() as con:
        con.execute(_REJECTED_TABLE)
        con.execute(
            "INSERT OR IGNORE INTO comments_rejected(id, created) VALUES (?, ?)", (cid, now())
        )


def is_rejected(db: Database, cid: str) -> bool:
    """True when the owner rejected this comment id before (it must not come back)."""
    try:
        return db.one("SELECT 1 FROM comments_rejected WHERE id = ?", (cid,)) is not None
    except sqlite3.OperationalError:
        return False  # no rejection yet: the table does not exist


# ---- listing ---------------------------------------------------------------------------------


def comment_entry(slug: str, comment: Comment) -> dict[str, Any]:
    """One comment in the ``comments list --json`` shape."""
    data = to_json(comment)
    return {
        "id": comment.id,
        "type": comment.type,
        "protocol": comment.protocol,
        "source": comment.source,
        "target": comment.target,
        "post": slug,
        "in_reply_to": comment.in_reply_to,
        "author": {
            "name": comment.author.name,
            "url": comment.author.url,
            "photo": comment.author.photo,
            "handle": comment.author.handle,
        },
        "content": comment.content,
        "published": data["published"],
        "updated": data["updated"],
        "status": comment.status,
    }


def list_notifications(db: Database) -> list[dict[str, Any]]:
    """Private mentions (not replies to a post), in the same shape, status ``private``."""
    out = []
    for row in db.query("SELECT * FROM notifications ORDER BY received"):
        author = _cached_author(db, row["actor"])
        received = dt.datetime.fromtimestamp(row["received"], dt.UTC)
        out.append(
            {
                "id": row["id"],
                "type": "mention",
                "protocol": "activitypub",
                "source": row["url"],
                "target": "",
                "post": "",
                "in_reply_to": "",
                "author": author,
                "content": row["content"],
                "published": received.isoformat().replace("+00:00", "Z"),
                "updated": None,
                "status": "private",
            }
        )
    return out


def _cached_author(db: Database, actor_id: str) -> dict[str, str]:
    from bridge.federation.actors import parse_actor

    row = db.one("SELECT doc FROM actors WHERE id = ?", (actor_id,))
    if row is not None:
        try:
            actor = parse_actor(json.loads(row["doc"]))
        except (BridgeError, ValueError):
            pass
        else:
            return {
                "name": display_name(actor.name),
                "url": http_url(actor.url),
                "photo": http_url(actor.icon),
                "handle": handle_of(actor.id, actor.doc.get("preferredUsername")),
            }
    return {"name": actor_id, "url": http_url(actor_id), "photo": "", "handle": ""}


def list_comments(
    source: Context | CommentStore,
    pending_only: bool = False,
    *,
    include_private: bool = True,
) -> list[dict[str, Any]]:
    """Every comment (or only pending ones), oldest first, as ``comments list --json``
    prints them.  Given a Context, private mentions follow (status ``private``) unless
    ``pending_only`` or not ``include_private``."""
    store = source.comments if isinstance(source, Context) else source
    entries = [
        comment_entry(slug, c)
        for slug, c in store.iter_all()
        if not pending_only or c.status == "pending"
    ]
    entries.sort(key=lambda e: (e["published"] or "", e["id"]))
    if isinstance(source, Context) and include_private and not pending_only:
        entries += list_notifications(source.db)
    return entries


# ---- the owner's decisions -------------------------------------------------------------------


def _find(ctx: Context, cid: str) -> tuple[str, Comment]:
    found = ctx.comments.get(cid) if re.fullmatch(r"[0-9a-f]{1,64}", cid) else None
    if found is None:
        if ctx.db.one("SELECT 1 FROM notifications WHERE id = ?", (cid,)):
            raise ModerationError(
                f"{cid}: a private mention, not a comment; it can only be deleted"
            )
        raise ModerationError(f"no comment with id {cid} (see 'indiebridge comments list')")
    return found


def approve(ctx: Context, cid: str) -> Comment:
    """Show a pending comment.  Raises ModerationError for an unknown id."""
    slug, comment = _find(ctx, cid)
    if comment.status != "approved":
        comment = replace(comment, status="approved")
        ctx.comments.write(slug, comment)
        note_change(ctx, slug, comment)
    return comment


def reject(ctx: Context, cid: str) -> Comment:
    """Delete a comment and refuse it if it is delivered again."""
    slug, comment = _find(ctx, cid)
    _remember_rejection(ctx.db, cid)
    ctx.comments.delete(cid)
    if comment.status == "approved":
        note_change(ctx, slug, comment)
    return comment


def delete(ctx: Context, cid: str) -> str:
    """Delete a comment (or a private mention); returns what it was.  A later redelivery
    or re-sent webmention may bring a deleted comment back; ``reject`` prevents that."""
    with ctx.db.tx() as con:
        cur = con.execute("DELETE FROM notifications WHERE id = ?", (cid,))
    if cur.rowcount:
        return "private mention"
    slug, comment = _find(ctx, cid)
    ctx.comments.delete(cid)
    if comment.status == "approved":
        note_change(ctx, slug, comment)
    return comment.type


def _blocked_actor_urls(db: Database) -> list[RemoteActor]:
    """Cached actors named by URL in the block list (their handle identifies comments)."""
    from bridge.federation.actors import parse_actor

    out = []
    for pattern in followers.blocks(db):
        if not pattern.startswith(("http://", "https://")):
            continue
        row = db.one("SELECT doc FROM actors WHERE id = ?", (pattern,))
        if row is None:
            continue
        try:
            out.append(parse_actor(json.loads(row["doc"])))
        except (BridgeError, ValueError):
            continue
    return out


def is_comment_blocked(db: Database, comment: Comment, blocked: Iterable[RemoteActor] = ()) -> bool:
    """Whether a block covers this comment's author, handle, source or domain."""
    refs = [comment.actor_id, comment.object_id, comment.source, comment.author.url]
    if any(r and followers.is_blocked(db, r, comment.author.handle) for r in refs):
        return True
    return any(author_matches(comment, actor) for actor in blocked)


def apply_blocks(ctx: Context) -> list[str]:
    """Remove comments and private mentions whose author is blocked; returns their ids."""
    if not followers.blocks(ctx.db):
        return []
    blocked = _blocked_actor_urls(ctx.db)
    removed: list[str] = []
    for slug, comment in list(ctx.comments.iter_all()):
        if is_comment_blocked(ctx.db, comment, blocked):
            ctx.comments.delete(comment.id)
            removed.append(comment.id)
            if comment.status == "approved":
                ctx.mark_dirty(slug)
    for row in ctx.db.query("SELECT id, actor FROM notifications"):
        if followers.is_blocked(ctx.db, row["actor"]):
            with ctx.db.tx() as con:
                con.execute("DELETE FROM notifications WHERE id = ?", (row["id"],))
            removed.append(row["id"])
    return removed


def absolute(base: str, url: Any) -> str:
    """``url`` resolved against ``base``, if the result is http(s); else ""."""
    if not isinstance(url, str) or not url.strip():
        return ""
    return http_url(urljoin(base, url.strip()))
