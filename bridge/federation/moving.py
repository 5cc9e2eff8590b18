"""Moving the blog's followers to another account (``indiebridge move``), and undoing it.

Facts relied on (Mastodon ``app/lib/activitypub/activity/move.rb``; docs
``content/en/spec/activitypub.md``, "Move"; tests/federation/test_moving.py):

* a receiver re-fetches the ``target`` and ignores the Move unless the target's
  ``alsoKnownAs`` lists the moving actor's id exactly, so ``move`` fetches it first and
  refuses with one line otherwise;
* the moving actor should publish ``movedTo`` (Mastodon shows a redirect banner and refuses
  new follows); the move is recorded in the state database (meta ``moved_to``), the build
  puts ``movedTo`` in the actor and a "this blog has moved" notice on every page, and the
  next publish sends Update(actor);
* ``move --undo`` forgets it: the next publish sends Update(actor) without ``movedTo``,
  which clears the redirect on Mastodon (``ProcessAccountService`` sets ``moved_to_account``
  from ``movedTo``, to nothing when absent).  Followers who already followed the new account
  stay there: a Move cannot be taken back from their side.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bridge.db import Database
from bridge.errors import BridgeError, PublishError
from bridge.federation import delivery, outbox
from bridge.federation.actors import as_list, first_id, parse_actor
from bridge.federation.context import Context
from bridge.site import activities, ledger


async def check_target(ctx: Context, target: str) -> dict[str, Any]:
    """Fetch ``target`` and return what the blog records about it.

    Raises:
        PublishError: it cannot be fetched, or its ``alsoKnownAs`` lacks this blog's actor.
    """
    try:
        doc = await ctx.actors.fetch_document(target)
        actor = parse_actor(doc)
    except BridgeError as exc:
        raise PublishError(f"move: cannot fetch {target}: {exc}") from None
    aliases = [first_id(a) for a in as_list(doc.get("alsoKnownAs"))]
    if ctx.config.actor_id not in aliases:
        raise PublishError(
            f"move: {actor.id} does not list {ctx.config.actor_id} in alsoKnownAs; add this "
            "blog as an alias on the new account first (Mastodon: Preferences > Account > "
            "Moving from a different account)"
        )
    return {"id": actor.id, "url": actor.url, "handle": actor.handle or actor.id}


def record(db: Database, target: dict[str, Any] | None) -> None:
    """Remember the move (``None``: forget it); the build reads it (``ledger.moved_to``)."""
    db.set_meta(ledger.MOVED_TO, json.dumps(target) if target else "")


async def move(ctx: Context, target: str, moment: dt.datetime | None = None) -> int:
    """Check ``target``, record the move and queue a signed Move to every follower.

    The caller rebuilds the site afterwards so the actor carries ``movedTo``.  Returns the
    number of deliveries queued.
    """
    moment = (moment or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    moved_to = await check_target(ctx, target)
    record(ctx.db, moved_to)
    inboxes = delivery.inboxes_for_followers(ctx.db)
    actor = {"id": ctx.config.actor_id, "type": "Person"}
    report = outbox.PublishReport()

    def make(previous: str) -> dict[str, Any]:
        return activities.move(ctx.config, moved_to["id"], moment, previous=previous)

    return outbox.queue_actor_activity(ctx, report, actor, inboxes, moment, make)
