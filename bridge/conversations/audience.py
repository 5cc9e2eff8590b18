"""Who an object is for: public (shown on the site) or not, and whether it names us.

Only public or unlisted objects become comments; anything else that addresses or mentions
the blog becomes a private notification for the owner.  ActivityStreams 2.0 (section 5.1,
https://www.w3.org/TR/activitystreams-vocabulary/#dfn-public) names the public collection
``https://www.w3.org/ns/activitystreams#Public``; in JSON-LD compacted form it is also
written ``as:Public`` or ``Public``, and Mastodon puts it in ``cc`` for unlisted posts.
"""

from __future__ import annotations

from typing import Any

from bridge.conversations.shapes import RemoteObject, addressing
from bridge.federation.context import Context

__all__ = ["PUBLIC", "is_public", "mentions_us"]

PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})


def is_public(obj: RemoteObject, activity: dict[str, Any]) -> bool:
    return bool((obj.audience | addressing(activity)[0]) & PUBLIC)


def mentions_us(ctx: Context, obj: RemoteObject, activity: dict[str, Any]) -> bool:
    me = ctx.config.actor_id
    audience, mentions = addressing(activity)
    return me in obj.audience | obj.mentions | audience | mentions
