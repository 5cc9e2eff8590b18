"""Threads: the tree of replies shown under a post, and each post's ``replies`` and its
FEP-7888 ``context`` collection, paged.

A server that reads a post can backfill the conversation people see on the blog, replies
that other servers sent us included.  Pure converters, no I/O.

Threading (``thread``) turns a post's approved replies into a tree *by construction*, since
``url`` and ``inReplyTo`` are whatever a stranger wrote:

* every reply is one node, keyed by its file id, and is placed exactly once (a visited
  set), so a comment never appears under two parents;
* a reference (``in_reply_to``) resolves to one node only: an object id first, then a
  ``url``, the earliest comment winning a collision.  A comment whose url copies another's
  id or url therefore never nests under both;
* a self-reply, or a reply whose parent chain loops, is cut at the earliest comment of the
  loop, which becomes a top-level reply;
* a thread shows at most ``MAX_THREAD_DEPTH`` levels: replies deeper than that are shown,
  in order, on the last level.  The work is linear in the number of replies, with no recursion
  deeper than the cap (``tests/security/test_thread_hostility.py``).

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
import operator
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.config import SiteConfig
from bridge.site.posts import Comment

AS = "https://www.w3.org/ns/activitystreams"
PAGE_SIZE = 50
MAX_THREAD_DEPTH = 20


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
    return reply_documents(config, slug, shown_replies(comments))


def reply_documents(
    config: SiteConfig, slug: str, replies: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """``documents`` for the ids ``shown_replies`` gave."""
    root = f"{post_base(config, slug)}.json"
    return paged(config, slug, "replies", replies) + paged(
        config, slug, "context", [root, *replies], attributedTo=config.actor_id
    )


# ---- the tree of replies shown under a post ---------------------------------------------------


@dataclass(frozen=True)
class Reactions:
    likes: tuple[Comment, ...]
    reposts: tuple[Comment, ...]
    bookmarks: tuple[Comment, ...]
    mentions: tuple[Comment, ...]
    quotes: tuple[Comment, ...] = ()  # FEP-044f quote posts of this post


@dataclass(frozen=True)
class Thread:
    """A reply with its nested replies, for threaded display."""

    comment: Comment
    children: tuple[Thread, ...]


_order = operator.attrgetter("published", "id")
"""A reply's place among its siblings: when it was written, then its id.  In C: a post
gone viral sorts thousands of replies on every rebuild."""


def _parents(replies: list[Comment]) -> dict[str, str]:
    """Comment id -> parent comment id, for replies to a known reply (never to itself)."""
    wanted = {c.in_reply_to for c in replies if c.in_reply_to}
    if not wanted:  # no reply names a parent (the common case): no name to resolve
        return {}
    owner: dict[str, str] = {}
    for c in replies:  # object ids are the authoritative names, so they are resolved first
        if c.object_id in wanted:
            owner.setdefault(c.object_id, c.id)
    for c in replies:
        if c.source in wanted:
            owner.setdefault(c.source, c.id)
    parents = {}
    for c in replies:
        parent = owner.get(c.in_reply_to) if c.in_reply_to else None
        if parent is not None and parent != c.id:
            parents[c.id] = parent
    return parents


def _loop_root(node: str, parents: dict[str, str], rank: dict[str, int]) -> str:
    """Where to cut the parent chain above an unreachable ``node``: the earliest comment of
    the loop the chain runs into."""
    path: list[str] = []
    seen: set[str] = set()
    while node not in seen:
        seen.add(node)
        path.append(node)
        node = parents[node]  # unreachable from a root, so every node on the way has a parent
    loop = path[path.index(node) :]
    return min(loop, key=rank.__getitem__)


def _tree(replies: list[Comment], parents: dict[str, str]) -> tuple[Thread, ...]:
    """The forest of ``replies`` (in order), each placed once, loops cut, depth capped."""
    if not parents:  # every reply is a top-level one, in order
        return tuple(Thread(c, ()) for c in replies)
    rank = {c.id: i for i, c in enumerate(replies)}
    children: dict[str, list[str]] = {}
    for c in replies:
        if c.id in parents:
            children.setdefault(parents[c.id], []).append(c.id)
    placed: set[str] = set()
    shown: dict[str, list[str]] = {}  # node -> the children it shows (after the depth cap)
    roots = [c.id for c in replies if c.id not in parents]
    for root in roots:
        _place(root, children, placed, shown)
    for c in replies:
        if c.id not in placed:
            root = _loop_root(c.id, parents, rank)
            roots.append(root)
            _place(root, children, placed, shown)
    by_id = {c.id: c for c in replies}
    roots.sort(key=rank.__getitem__)
    return tuple(_freeze(root, by_id, shown) for root in roots)


def _place(
    root: str, children: dict[str, list[str]], placed: set[str], shown: dict[str, list[str]]
) -> None:
    """Place ``root`` and every unplaced node below it, breadth-first; at the depth cap a
    node shows its whole remaining subtree as direct children."""
    placed.add(root)
    queue: deque[tuple[str, int]] = deque([(root, 0)])
    while queue:
        node, depth = queue.popleft()
        capped = depth >= MAX_THREAD_DEPTH - 2  # its children are on the last level
        below = deque(children.get(node, []))
        while below:
            kid = below.popleft()
            if kid in placed:
                continue
            placed.add(kid)
            shown.setdefault(node, []).append(kid)
            if capped:
                below.extend(children.get(kid, []))  # flattened under ``node``
            else:
                queue.append((kid, depth + 1))


def _freeze(root: str, by_id: dict[str, Comment], shown: dict[str, list[str]]) -> Thread:
    """Frozen ``Thread`` values, built bottom-up without recursion."""
    order: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(shown.get(node, []))
    built: dict[str, Thread] = {}
    for node in reversed(order):
        below = shown.get(node)
        if not below:  # most replies: no sort to make
            built[node] = Thread(by_id[node], ())
            continue
        kids = sorted((built[k] for k in below), key=lambda t: _order(t.comment))
        built[node] = Thread(by_id[node], tuple(kids))
    return built[root]


def thread(comments: Sequence[Comment]) -> tuple[tuple[Thread, ...], Reactions]:
    """Group a post's approved comments into reply threads and reaction rows."""
    approved = sorted((c for c in comments if c.status == "approved"), key=_order)
    unique: dict[str, Comment] = {}
    for c in approved:
        unique.setdefault(c.id, c)  # earliest wins
    replies = [c for c in unique.values() if c.type == "reply"]  # sorted, as ``approved``
    threads = _tree(replies, _parents(replies))

    def pick(kind: str) -> tuple[Comment, ...]:
        return tuple(c for c in approved if c.type == kind)

    return threads, Reactions(
        pick("like"), pick("repost"), pick("bookmark"), pick("mention"), pick("quote")
    )
