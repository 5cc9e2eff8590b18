"""ActivityStreams collections: the outbox and its pages, followers, and each post's
replies, likes and shares. Pure, like ``activities``, which builds what they hold.

The outbox is paged 20 Creates a page, newest first; each item keeps its ``@context``,
because its integrity proof hashes the whole document. Followers are a count plus, from
the daemon, pages of 40 actor ids (Mastodon reads the count; other servers page through
for follower synchronisation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bridge.config import SiteConfig
from bridge.site.activities import ACTIVITY_CONTEXT, AS, post_collections
from bridge.site.posts import Comment, Post

OUTBOX_PAGE_SIZE = 20


def ordered_collection(
    coll_id: str, items: Sequence[Any], *, total: int | None = None
) -> dict[str, Any]:
    return {
        "@context": AS,
        "id": coll_id,
        "type": "OrderedCollection",
        "totalItems": len(items) if total is None else total,
        "orderedItems": list(items),
    }


def outbox_pages(
    config: SiteConfig, creates: Sequence[dict[str, Any]]
) -> Iterable[tuple[str, dict[str, Any]]]:
    """(url, document) for the outbox and each of its pages, newest first."""
    total = len(creates)
    pages = max(1, -(-total // OUTBOX_PAGE_SIZE))

    def page_url(n: int) -> str:
        return f"{config.base_url}/ap/outbox/page-{n}.json"

    yield (
        config.outbox_url,
        {
            "@context": AS,
            "id": config.outbox_url,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": page_url(1),
            "last": page_url(pages),
        },
    )
    for n in range(1, pages + 1):
        chunk = creates[(n - 1) * OUTBOX_PAGE_SIZE : n * OUTBOX_PAGE_SIZE]
        page: dict[str, Any] = {
            "@context": ACTIVITY_CONTEXT,
            "id": page_url(n),
            "type": "OrderedCollectionPage",
            "partOf": config.outbox_url,
            "totalItems": total,
            # Items keep their @context: their integrity proofs hash the whole document.
            "orderedItems": list(chunk),
        }
        if n > 1:
            page["prev"] = page_url(n - 1)
        if n < pages:
            page["next"] = page_url(n + 1)
        yield page_url(n), page


FOLLOWERS_PAGE_SIZE = 40


def followers_collection(config: SiteConfig, total: int, *, paged: bool = False) -> dict[str, Any]:
    """Followers as a count plus, from the daemon, pages of actor ids (as Mastodon serves
    them; Mastodon reads the count, other servers page through for follower sync)."""
    doc: dict[str, Any] = {
        "@context": AS,
        "id": config.followers_url,
        "type": "OrderedCollection",
        "totalItems": total,
    }
    if paged and total:
        doc["first"] = f"{config.followers_url}?page=1"
    return doc


def followers_page(
    config: SiteConfig, number: int, actors: Sequence[str], total: int
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "@context": AS,
        "id": f"{config.followers_url}?page={number}",
        "type": "OrderedCollectionPage",
        "partOf": config.followers_url,
        "totalItems": total,
        "orderedItems": list(actors),
    }
    if number * FOLLOWERS_PAGE_SIZE < total:
        page["next"] = f"{config.followers_url}?page={number + 1}"
    if number > 1:
        page["prev"] = f"{config.followers_url}?page={number - 1}"
    return page


def comment_collections(
    config: SiteConfig, post: Post, comments: Sequence[Comment]
) -> dict[str, dict[str, Any]]:
    """replies/likes/shares collections for one post from its approved comments.

    Fediverse replies are listed by their ActivityStreams id (Mastodon 4.5+ fetches
    them); webmention replies are listed by their source URL, the only public id they have.
    """
    urls = post_collections(config, post.slug)
    approved = [c for c in comments if c.status == "approved"]
    replies = [c.object_id or c.source for c in approved if c.type == "reply" and not c.in_reply_to]
    likes = [c.object_id or c.source for c in approved if c.type == "like"]
    shares = [c.object_id or c.source for c in approved if c.type == "repost"]
    return {
        "replies": ordered_collection(urls["replies"], replies),
        "likes": ordered_collection(urls["likes"], likes),
        "shares": ordered_collection(urls["shares"], shares),
    }
