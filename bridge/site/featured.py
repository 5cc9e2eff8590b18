"""Pinned posts and featured tags: the actor's ``featured`` and ``featuredTags`` collections
and the pin activities.

A post with ``pinned: true`` in its front matter is featured on the actor's profile and
shown first on the home page.  With ``featured_tags = N`` the N most used tags are the
profile's featured hashtags.  Pure converters, no I/O; ``bridge.federation.pins`` decides
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
* ``featuredTags`` (``toot:featuredTags``, an ``@id``) is a ``Collection`` (or
  ``OrderedCollection``, its pages followed) of ``Hashtag`` objects; Mastodon keeps the
  ``name`` of each item typed ``Hashtag`` without its ``#``, at most 10
  (``FeaturedTag::LIMIT``), and serves its own as ``{"type": "Hashtag", "href", "name":
  "#tag"}`` items of a ``Collection`` (``ActivityPub::FetchFeaturedTagsCollectionService``;
  ``app/models/featured_tag.rb``).  Its featured tags are ordered by how many statuses use
  them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bridge.config import SiteConfig
from bridge.site.activities import ACTIVITY_CONTEXT, AS, PUBLIC, iso
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import Post, tag_slug

MAX_FEATURED_TAGS = 10  # Mastodon reads no more (FeaturedTag::LIMIT)


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


def most_used_tags(posts: Sequence[Post], limit: int) -> list[tuple[str, str]]:
    """(tag slug, hashtag name) of the ``limit`` tags most federated posts carry: most
    posts first, then the most recently used, then by name.  A tag's spellings that share
    a page (``Python``, ``python``) count together, named as its newest post writes it."""
    counts: dict[str, int] = {}
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for post in posts:
        if post.draft:
            continue
        for tag in dict.fromkeys(post.tags):
            name = hashtag_name(tag)
            if name is None:
                continue
            slug = tag_slug(tag)
            counts[slug] = counts.get(slug, 0) + 1
            if slug not in latest or post.date > latest[slug][0]:
                latest[slug] = (post.date, name)
    ranked = sorted(counts, key=lambda s: (-counts[s], -latest[s][0].timestamp(), latest[s][1]))
    return [(slug, latest[slug][1]) for slug in ranked[: min(limit, MAX_FEATURED_TAGS)]]


def tags_collection(config: SiteConfig, posts: Sequence[Post]) -> dict[str, Any]:
    """The ``featuredTags`` Collection: a ``Hashtag`` per featured tag, its page as ``href``."""
    items = [
        {"type": "Hashtag", "href": config.tag_url(slug), "name": f"#{name}"}
        for slug, name in most_used_tags(posts, config.featured_tags)
    ]
    return {
        "@context": [AS, {"Hashtag": "as:Hashtag"}],
        "id": config.featured_tags_url,
        "type": "Collection",
        "totalItems": len(items),
        "items": items,
    }
