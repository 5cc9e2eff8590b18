"""Whole threads: each post's ``replies`` and its FEP-7888 ``context`` collection, paged.

A server that reads a post can backfill the conversation people see on the blog, replies
that other servers sent us included.  Pure converters, no I/O.

Facts relied on (tests/site/test_threads.py checks each):

* FEP-7888 ("Demystifying the context property"): an object's ``context`` names the
  conversation it belongs to; when it dereferences, it SHOULD be a collection of the
  conversation's objects, owned by its ``attributedTo``.  Every object of one thread
  carries the same ``context``: ours is one collection per post, listing the post first,
  then every reply shown under it, oldest first.
* Mastodon 4.5 fetches a post's ``replies`` to find replies it has not seen ("fetch all
  replies", on by default): it reads the collection's ``first`` page and follows
  ``next``, taking ``items`` or ``orderedItems`` (``ActivityPub::FetchRepliesService``).
  Items are the original ids of remote replies (a webmention reply's id is its source URL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bridge.config import SiteConfig
from bridge.site.posts import Comment

AS = "https://www.w3.org/ns/activitystreams"
PAGE_SIZE = 50


def post_base(config: SiteConfig, slug: str) -> str:
    return f"{config.base_url}/ap/posts/{slug}"


def context_url(config: SiteConfig, slug: str) -> str:
    """The post's conversation collection (its ``context``)."""
    return f"{post_base(config, slug)}/context.json"


_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def shown_replies(comments: Sequence[Comment]) -> list[str]:
    """Ids of the replies shown under a post (nested ones too), oldest first; replies of
    the same ``published`` second by arrival (``Comment.received``; files older than it
    first, by file name), so a burst of replies adds to the last page instead of moving
    items across every page after it."""
    approved = sorted(
        (c for c in comments if c.status == "approved" and c.type == "reply"),
        key=lambda c: (c.published, c.received or _NEVER),
    )
    return list(dict.fromkeys(c.object_id or c.source for c in approved))


def paged(
    config: SiteConfig, slug: str, name: str, items: Sequence[str], **extra: Any
) -> list[tuple[str, dict[str, Any]]]:
    """(path below the output, document) of a collection ``name`` and its pages.

    The collection lives at ``ap/posts/<slug>/<name>.json``, its pages at
    ``ap/posts/<slug>/<name>/page-N.json``; there is always a first page, empty or not.
    """
    rel = f"ap/posts/{slug}/{name}"
    base = f"{config.base_url}/{rel}"
    pages = max(1, -(-len(items) // PAGE_SIZE))

    def page_url(n: int) -> str:
        return f"{base}/page-{n}.json"

    out: list[tuple[str, dict[str, Any]]] = [
        (
            f"{rel}.json",
            {
                "@context": AS,
                "id": f"{base}.json",
                "type": "OrderedCollection",
                **extra,
                "totalItems": len(items),
                "first": page_url(1),
                "last": page_url(pages),
            },
        )
    ]
    for n in range(1, pages + 1):
        page: dict[str, Any] = {
            "@context": AS,
            "id": page_url(n),
            "type": "OrderedCollectionPage",
            "partOf": f"{base}.json",
            "orderedItems": list(items[(n - 1) * PAGE_SIZE : n * PAGE_SIZE]),
        }
        if n > 1:
            page["prev"] = page_url(n - 1)
        if n < pages:
            page["next"] = page_url(n + 1)
        out.append((f"{rel}/page-{n}.json", page))
    return out


def documents(
    config: SiteConfig, slug: str, comments: Sequence[Comment]
) -> list[tuple[str, dict[str, Any]]]:
    """Every document of a post's thread: ``replies`` and ``context``, each with pages."""
    replies = shown_replies(comments)
    root = f"{post_base(config, slug)}.json"
    return paged(config, slug, "replies", replies) + paged(
        config, slug, "context", [root, *replies], attributedTo=config.actor_id
    )
