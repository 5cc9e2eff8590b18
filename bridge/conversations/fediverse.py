"""Fediverse replies, likes and boosts become comments on the blog: the inbox's hooks.

``HOOKS`` plugs into the inbox: ``inbox.default_handlers(conversation=HOOKS)``.  Each hook
is ``async (ctx, activity, forwarded) -> None``; the inbox has verified the signature and
checked that the signer is the actor (or flagged the activity ``forwarded``).

The handlers live by concept:

* ``replies``: Create, Update and Delete of objects (replies, quote posts, private
  mentions) and of actors;
* ``reactions``: Like, EmojiReact, Announce, their Undo, and the ignored Dislike;
* ``remote_objects``: reading an object (trust of embedded copies, fetching from the
  origin, content, media, author);
* ``audience``: public or not, and whether an object names us.

A ``FetchError`` from fetching an author or object propagates so the inbox retries later;
404/410 drop the activity.  Every change calls ``ctx.mark_dirty(slug)``; a change to an
approved reply also queues a Salmention (``salmention.note_change``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bridge.conversations.reactions import ignore, on_reaction, on_undo
from bridge.conversations.replies import on_create, on_delete, on_update
from bridge.federation.context import Context

__all__ = ["HOOKS", "Hook"]

Hook = Callable[[Context, dict[str, Any], bool], Awaitable[None]]

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
