"""What the inbox does with each activity type: the follow handlers and the dispatch table.

Each handler is ``async (ctx, activity, forwarded) -> None``; ``default_handlers`` builds the
one table (type -> handler) the processor dispatches on, with the conversation handlers
(Create, Update, Like, Announce...) plugged in by the caller.  Facts relied on (tests in
tests/federation/test_daemon_inbox.py): unknown types are accepted and ignored; Accept
embeds the original Follow with its original id; a repeated Follow gets another Accept;
Undo(Follow) is recognised by the embedded Follow or by the follow id alone; nobody may
undo someone else's activity.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.federation import followers, outbox
from bridge.federation.actors import first_id
from bridge.federation.context import Context
from bridge.site import activities

Handler = Callable[[Context, dict[str, Any], bool], Awaitable[None]]
ConversationHook = Handler

CONVERSATION_TYPES = (
    "Create",
    "Update",
    "Like",
    "Announce",
    "EmojiReact",
    "Dislike",
    "QuoteRequest",
    "Accept",  # answers to our QuoteRequests (federation.quoting); a Follow's is ignored
    "Reject",
)
PROCESSED_TYPES = frozenset({"Follow", "Undo", "Delete", *CONVERSATION_TYPES})
"""Types a handler acts on; the inbox answers any other type 202 and does not store it."""


async def on_follow(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    if forwarded:
        return
    actor_id = first_id(activity["actor"])
    target = first_id(activity.get("object"))
    if not actor_id or target != ctx.config.actor_id:
        return
    actor = await ctx.actors.get(actor_id)
    follow_id = activity.get("id")
    if not isinstance(follow_id, str) or not follow_id:
        follow_id = actor_id + "#follow"  # an id of another JSON type is no id
    follow = {"id": follow_id, "actor": actor_id}
    stamp = hashlib.sha256(f"{follow['id']}{time.time_ns()}".encode()).hexdigest()[:16]
    reply_id = f"{ctx.config.actor_id}#accepts/{stamp}"
    if followers.is_blocked(ctx.db, actor_id, actor.handle):
        reject = activities.accept(
            ctx.config, follow, reply_id.replace("accepts", "rejects"), "Reject"
        )
        ctx.enqueue(outbox.signed(ctx, reject), [actor.inbox])
        return
    state = "pending" if ctx.config.manually_approves_followers else "accepted"
    existing = followers.get(ctx.db, actor_id)
    followers.upsert(
        ctx.db,
        actor=actor_id,
        inbox=actor.inbox,
        shared_inbox=actor.shared_inbox,
        follow_id=follow["id"],
        handle=actor.handle,
        state=state,
    )
    if state == "accepted" or (existing is not None and existing.state == "accepted"):
        accept = activities.accept(ctx.config, follow, reply_id)
        ctx.enqueue(outbox.signed(ctx, accept), [actor.inbox])


def accept_pending(ctx: Context, actor_id: str) -> bool:
    """Approve a pending follower (``indiebridge followers approve``)."""
    f = followers.get(ctx.db, actor_id)
    if f is None:
        return False
    followers.set_state(ctx.db, actor_id, "accepted")
    stamp = hashlib.sha256(f"{f.follow_id}{time.time_ns()}".encode()).hexdigest()[:16]
    accept = activities.accept(
        ctx.config, {"id": f.follow_id, "actor": actor_id}, f"{ctx.config.actor_id}#accepts/{stamp}"
    )
    ctx.enqueue(outbox.signed(ctx, accept), [f.inbox])
    return True


def undo_target(activity: dict[str, Any]) -> tuple[str, str | None, dict[str, Any] | None]:
    """(type of the undone activity, its id, the embedded activity if any)."""
    inner = activity.get("object")
    if isinstance(inner, dict):
        return str(inner.get("type", "")), first_id(inner), inner
    if isinstance(inner, str):
        return "", inner, None
    return "", None, None


def make_undo(conversation_undo: ConversationHook | None) -> Handler:
    async def on_undo(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
        if forwarded:
            return
        actor_id = first_id(activity["actor"])
        kind, inner_id, inner = undo_target(activity)
        if inner is not None and first_id(inner.get("actor")) not in (None, actor_id):
            return  # nobody may undo someone else's activity
        follower = followers.get(ctx.db, actor_id) if actor_id else None
        if kind == "Follow" or (
            follower is not None and inner_id is not None and inner_id == follower.follow_id
        ):
            if actor_id:
                followers.remove(ctx.db, actor_id)
            return
        if conversation_undo is not None:
            await conversation_undo(ctx, activity, forwarded)

    return on_undo


def make_delete(conversation_delete: ConversationHook | None) -> Handler:
    async def on_delete(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
        if forwarded:
            return
        actor_id = first_id(activity["actor"])
        object_id = first_id(activity.get("object"))
        if actor_id and object_id == actor_id:
            followers.remove(ctx.db, actor_id)
        if conversation_delete is not None:
            await conversation_delete(ctx, activity, forwarded)

    return on_delete


async def ignore(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
    return None


def default_handlers(
    conversation: dict[str, ConversationHook] | None = None,
) -> dict[str, Handler]:
    """Dispatch table; ``conversation`` adds Create/Update/Like/Announce/Undo/Delete hooks."""
    conv = conversation or {}
    table: dict[str, Handler] = {
        "Follow": on_follow,
        "Undo": make_undo(conv.get("Undo")),
        "Delete": make_delete(conv.get("Delete")),
        "Accept": ignore,
        "Reject": ignore,
        "Move": ignore,
    }
    for kind in CONVERSATION_TYPES:
        if kind in conv:
            table[kind] = conv[kind]
    return table
