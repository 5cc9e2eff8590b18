"""Who an object is for: public (shown on the site) or not, and whether it names us.

Visibility comes only from the object as its origin serves it (or as its own author
embedded it), never from the activity around it: a third party could wrap someone's
followers-only reply in ``Create{to: Public}``, and a forwarded or relayed wrapper says
nothing about the object.  Only public or unlisted objects become comments; anything else
that addresses or mentions the blog becomes a private notification for the owner, and an
edit that makes a comment non-public takes it off the site.

ActivityPub (section 5.6, https://www.w3.org/TR/activitypub/#public-addressing) names the
public collection ``https://www.w3.org/ns/activitystreams#Public``; in JSON-LD compacted form it is
also written ``as:Public`` or ``Public``.  Mastodon puts it in ``to`` for public posts and in
``cc`` for unlisted ones (docs.joinmastodon.org/spec/activitypub/#visibility).
"""

from __future__ import annotations

from bridge.conversations.shapes import RemoteObject
from bridge.federation.context import Context

__all__ = ["PUBLIC", "is_public", "mentions_us"]

PUBLIC = frozenset({"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"})


def is_public(obj: RemoteObject) -> bool:
    """Public or unlisted, by the object's own ``to``/``cc``/``audience``."""
    return bool(obj.audience & PUBLIC)


def mentions_us(ctx: Context, obj: RemoteObject) -> bool:
    """The object addresses or tags the blog's actor."""
    return ctx.config.actor_id in obj.audience | obj.mentions
