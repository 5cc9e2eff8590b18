"""Who an object is for: public (shown on the site) or not, and whether it names us.

Only public or unlisted objects become comments; anything else that addresses or mentions
the blog becomes a private notification for the owner.  ActivityStreams 2.0 (section 5.1,
https://www.w3.org/TR/activitystreams-vocabulary/#dfn-public) names the public collection
``https://www.w3.org/ns/activitystreams#Public``; in JSON-LD compacted form it is also
written ``as:Public`` or ``Public``, and Mastodon puts it in ``cc`` for unlisted posts.
"""

from __future__ import annotations

from typing import Any

from bridge.federation.actors import as_list, first_id
from bridge.federation.context import Context

__all__ = ["PUBLIC", "is_public", "mentions_us"]

PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})


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
