"""Pinned posts: the actor's ``featured`` collection and the pin activities.

A post with ``pinned: true`` in its front matter is featured on the actor's profile and
shown first on the home page.  Pure converters, no I/O; ``bridge.federation.pins`` decides
at publish time which ``Add``/``Remove`` to send.

Facts relied on (tests/site/test_featured.py checks each):

* Mastodon reads the actor's ``featured`` (``toot:featured``, an ``@id``) as an
  ``OrderedCollection`` whose ``orderedItems`` are the pinned statuses, embedded or by id,
  newest pin first; it fetches it when it first learns of the actor
  (Mastodon's ``ActivityPub::FetchFeaturedCollectionService``; docs
  ``spec/activitypub.md``, "featured").
* A pin made later is announced with ``Add {object: <status id>, target: <featured
  collection id>}`` and an unpin with ``Remove`` of the same shape; Mastodon only accepts
  them when ``target`` equals the actor's ``featured`` URL (``ActivityPub::Activity::Add``
  and ``::Remove``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bridge.config import SiteConfig
from bridge.site.activities import ACTIVITY_CONTEXT, AS, PUBLIC, iso
from bridge.site.posts import Post


def pinned(posts: Sequence[Post]) -> list[Post]:
    """The federated posts marked ``pinned: true``, newest first."""
    return sorted(
        (p for p in posts if p.pinned and not p.draft), key=lambda p: p.date, reverse=True
    )


def home_order(posts: Sequence[Post]) -> list[Post]:
    """Posts as the home page lists them: pinned ones first (newest first), then the rest."""
    pins = [p for p in posts if p.pinned]
    pins.sort(key=lambda p: p.date, reverse=True)
    return pins + [p for p in posts if not p.pinned]


def collection(config: SiteConfig, objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``featured`` OrderedCollection embedding the pinned objects in the given order."""
    return {
        "@context": AS,
        "id": config.featured_url,
        "type": "OrderedCollection",
        "totalItems": len(objects),
        # Items keep their @context: their integrity proofs hash the whole document.
        "orderedItems": list(objects),
    }


def pin_activity(
    config: SiteConfig, kind: str, object_id: str, moment: dt.datetime
) -> dict[str, Any]:
    """``Add`` (pin) or ``Remove`` (unpin) of one of our objects to/from ``featured``."""
    if kind not in ("Add", "Remove"):
        raise ValueError(f"pin activity must be Add or Remove, not {kind!r}")
    stamp = int(moment.timestamp())
    return {
        "@context": ACTIVITY_CONTEXT,
        "id": f"{object_id}#{kind.lower()}-featured/{stamp}",
        "type": kind,
        "actor": config.actor_id,
        "published": iso(moment),
        "to": [PUBLIC],
        "cc": [config.followers_url],
        "object": object_id,
        "target": config.featured_url,
    }
