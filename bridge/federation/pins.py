"""Pins at publish time: ``Add``/``Remove`` to followers when the featured posts change.

The build writes ``ap/featured.json`` (see ``bridge.site.featured``); ``publish`` calls
``publish_pins`` after the posts' own activities are queued, so a post pinned in the
same publish that creates it reaches followers after its ``Create``.  The ids pinned at
the last publish are kept in the ``meta`` table.  The first publish only records them:
a server fetches the whole ``featured`` collection when it first learns of the actor
(Mastodon's ``FetchFeaturedCollectionService``), so there is nothing to announce.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from bridge.config import SiteConfig
from bridge.site import featured, proofs

if TYPE_CHECKING:  # the delivery and HTTP stack load only when a pin is sent
    from bridge.federation.context import Context

log = logging.getLogger("indiebridge.publish")

META_KEY = "featured_ids"


def pinned_ids(ctx: Context) -> list[str]:
    """Ids listed by the built ``featured`` collection, newest pin first."""
    return pinned_in(ctx.config)


def pinned_in(config: SiteConfig) -> list[str]:
    """``pinned_ids`` of the site ``config`` builds."""
    path = config.output_dir / "ap" / "featured.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    items = doc.get("orderedItems", [])
    return [i["id"] if isinstance(i, dict) else str(i) for i in items]


def changes(previous: list[str], current: list[str]) -> tuple[list[str], list[str]]:
    """(pinned since, unpinned since), each in the order of its own list."""
    return [i for i in current if i not in previous], [i for i in previous if i not in current]


def publish_pins(ctx: Context, inboxes: list[str], moment: dt.datetime) -> int:
    """Queue ``Add`` for new pins and ``Remove`` for dropped ones; returns deliveries queued.

    A post that was deleted is not "unpinned": its ``Delete`` already removes it everywhere.
    """
    from bridge.federation import delivery

    current = pinned_ids(ctx)
    stored = ctx.db.get_meta(META_KEY)
    if stored is None or not inboxes:
        ctx.db.set_meta(META_KEY, json.dumps(current))
        return 0
    added, removed = changes(json.loads(stored), current)
    queued = 0
    for kind, ids in (("Remove", removed), ("Add", added)):
        for object_id in ids:
            if kind == "Remove" and not _still_served(ctx, object_id):
                continue
            activity = proofs.sign_object(
                featured.pin_activity(ctx.config, kind, object_id, moment),
                ctx.keys.ed25519,
                ctx.config.ed25519_key_id,
                moment,
            )
            queued += delivery.enqueue(ctx.db, activity, inboxes)
            ctx.wake_delivery()  # rows are already queued
            log.info("%s %s (featured)", kind, object_id)
    # Recorded once queued: a crash in between sends a pin twice, never not at all.
    ctx.db.set_meta(META_KEY, json.dumps(current))
    return queued


def _still_served(ctx: Context, object_id: str) -> bool:
    local = ctx.config.local_path(object_id)
    return local is not None and (ctx.config.output_dir / local.lstrip("/")).is_file()
