"""ActivityStreams collections: the outbox and its pages, followers, and each post's
replies, likes and shares. Pure, like ``activities``, which builds what they hold.

A post's replies, likes, shares and context collections are written only when they have
items (``post_documents``): nearly every post has none, and they were over half the files
of a build.  The ids stay the same either way (the Note names them); an empty one is
answered by the daemon from ``empty_document`` (``bridge.daemon.collections``), and on a
static host by a rewrite to one shared empty document (``SHARED_EMPTY``,
``static_rewrites``).

The outbox is paged 20 Creates a page, newest first; each item keeps its ``@context``,
because its integrity proof hashes the whole document. Followers are a count plus, from
the daemon, pages of 40 actor ids (Mastodon reads the count; other servers page through
for follower synchronisation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, overload

from bridge.config import SiteConfig
from bridge.site import threads
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


class CountedCreates(Sequence[dict[str, Any]]):
    """``total`` Creates as ``outbox_pages`` reads them: counted, never listed (every
    slice is empty), so the outbox and each page come with their fields and no items;
    the build splices a page's Creates in as the bytes it wrote them (``plan_documents``)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return []
        raise TypeError("the Creates are counted, not listed")


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
    return _comment_collections(config, post.slug, comments)


def _comment_collections(
    config: SiteConfig, slug: str, comments: Sequence[Comment]
) -> dict[str, dict[str, Any]]:
    urls = post_collections(config, slug)
    approved = [c for c in comments if c.status == "approved"]
    replies = [c.object_id or c.source for c in approved if c.type == "reply" and not c.in_reply_to]
    likes = [c.object_id or c.source for c in approved if c.type == "like"]
    shares = [c.object_id or c.source for c in approved if c.type == "repost"]
    return {
        "replies": ordered_collection(urls["replies"], replies),
        "likes": ordered_collection(urls["likes"], likes),
        "shares": ordered_collection(urls["shares"], shares),
    }


# ---- each post's collections: written when they have items, answered when empty ----------

SHARED_EMPTY = "ap/empty-collection.json"
"""The one document a static host serves for every empty per-post collection."""

_POST_COLLECTION = re.compile(
    r"ap/posts/(?P<slug>[^/]+)/(?:(?P<paged>replies|context)(?:\.json|/page-1\.json)"
    r"|(?P<flat>likes|shares)\.json)"
)


def post_documents(
    config: SiteConfig, slug: str, comments: Sequence[Comment]
) -> list[tuple[str, dict[str, Any]]]:
    """(path below the output, document) of the post's collections that have items.

    ``replies`` and ``context`` (with their pages, ``bridge.site.threads``) when a reply is
    shown; ``likes`` and ``shares`` when there is one.  The others are not written: the
    daemon answers them with ``empty_document`` and a static host with ``SHARED_EMPTY``.
    """
    if not comments:  # nearly every post
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    replies = threads.shown_replies(comments)
    if replies:
        out += threads.reply_documents(config, slug, replies)
    flat = _comment_collections(config, slug, comments)
    for name in ("likes", "shares"):
        doc = flat[name]
        if doc["totalItems"]:
            out.append((f"ap/posts/{slug}/{name}.json", doc))
    return out


def empty_document(config: SiteConfig, rel: str) -> dict[str, Any] | None:
    """The document at ``rel`` (a path below the output) when it is a post's collection or
    first page with no items, which the build does not write; None for any other path.

    The same converters build it as build the written ones, so a collection answers the
    same way before and after its first item: ``replies`` empty with an empty first page,
    ``context`` the post alone (FEP-7888), ``likes`` and ``shares`` a count of 0.
    """
    m = _POST_COLLECTION.fullmatch(rel)
    if m is None:
        return None
    slug = m.group("slug")
    if m.group("flat"):
        return _comment_collections(config, slug, [])[m.group("flat")]
    for path, doc in threads.documents(config, slug, []):
        if path == rel:
            return doc
    return None  # pragma: no cover - the pattern names only paths documents() makes


def shared_empty(config: SiteConfig) -> dict[str, Any]:
    """``SHARED_EMPTY``: an empty collection a static host answers for every empty
    per-post collection.  Its id is its own URL, not the one asked for, so it is a
    valid document everywhere it is served; Mastodon reads collections it fetches
    without comparing ids (``fetch_resource_without_id_verification`` in
    ``ActivityPub::FetchRepliesService``)."""
    return ordered_collection(f"{config.base_url}/{SHARED_EMPTY}", [])


def static_rewrites() -> str:
    """Netlify ``_redirects`` rules (status 200: a rewrite, served only where no file
    exists, Netlify's "shadowing") that answer each unwritten per-post collection with
    ``SHARED_EMPTY``."""
    paths = [
        *(f"/ap/posts/:slug/{name}.json" for name in ("replies", "likes", "shares", "context")),
        *(f"/ap/posts/:slug/{name}/page-1.json" for name in ("replies", "context")),
    ]
    head = "# Empty collections of posts answer one shared document (indiebridge build).\n"
    return head + "".join(f"{p}  /{SHARED_EMPTY}  200\n" for p in paths)
