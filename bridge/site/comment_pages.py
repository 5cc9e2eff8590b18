"""Comment pages: a post's conversation split into pages, the newest one on the post's page.

A post gone viral gathers thousands of replies.  Shown on one page, the page of a post with
10,000 replies was 8.8 MB for every reader, and each new reply rendered all of it again
(and held it, with every card, in the rebuilding process's memory).  Pages are made as
WordPress makes them ("Break comments into pages with N top level comments per page and
the last page displayed by default", Settings > Discussion):

* a page holds ``comments_per_page`` top-level replies, each with all of its nested
  replies (``threads.thread`` has already capped their depth), so a reply to an old
  comment joins that comment's page and never moves a page boundary;
* pages are numbered from the oldest: page 1 holds the first replies to arrive, and an
  older page's address (``posts/<slug>/comments/<n>/``) keeps its replies as new ones
  arrive, whatever date they claim (``split``);
* the post's own page shows the last, newest page: a new reply lands on the page a reader
  and a Webmention sender look at, and only that page is rendered again.  Each older
  page's key is made of its replies' files (``page_digest``), not of the whole post's;
* a theme whose post page never prints ``comment_pages`` (written before pages existed)
  gets every reply on the post's page, as before (``Renderer.shows``): no reply may
  become unreachable from the post.

Pure converters, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.config import SiteConfig
from bridge.site.threads import Thread

__all__ = ["CommentPages", "page_digest", "page_rel", "page_url", "places", "replies", "split"]


@dataclass(frozen=True)
class CommentPages:
    """Where one page of a post's conversation stands (``comment_pages`` in templates).

    Everything here is part of the page's key, so it holds nothing that changes when
    other pages do: an older page does not know how many pages follow it."""

    number: int
    """This page's number; 1 is the oldest, and the post's page has the highest."""
    post_url: str
    older_url: str
    """The page before this one, or "" on page 1."""
    newer_url: str
    """The page after this one (the last older page's is the post's ``#comments``), or ""
    on the post's page."""
    older_replies: int | None = None
    """On the post's page only: how many replies (nested ones too) the older pages hold."""


def split(threads: Sequence[Thread], per_page: int) -> list[tuple[Thread, ...]]:
    """The pages' threads, oldest page first; always at least one page (maybe empty).
    ``per_page`` 0 puts every thread on one page.

    Threads go to pages in the order their first reply *arrived* (``Comment.received``;
    its ``published`` in files older than that field), and each page lists its threads
    in the order ``threads`` has them (written, oldest first).  By arrival, a new reply
    always lands on the newest page: one dated in the past (a server catching up, a
    burst of replies in one second whose order by id is random, or a stranger's forged
    date) would otherwise slide a thread into every older page and render them all
    again."""
    if per_page <= 0 or len(threads) <= per_page:
        return [tuple(threads)]
    arrival = [node.comment.received or node.comment.published for node in threads]
    arrived = sorted(range(len(threads)), key=arrival.__getitem__)  # stable: ties keep order
    page_of = [0] * len(threads)
    for rank, i in enumerate(arrived):
        page_of[i] = rank // per_page
    pages: list[list[Thread]] = [[] for _ in range(-(-len(threads) // per_page))]
    for i, node in enumerate(threads):
        pages[page_of[i]].append(node)
    return [tuple(page) for page in pages]


def replies(threads: Sequence[Thread]) -> int:
    """The replies in ``threads``, nested ones too (no recursion: a thread may be deep)."""
    count, stack = 0, list(threads)
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children)
    return count


def page_rel(slug: str, number: int) -> str:
    """An older page's file below the output folder."""
    return f"posts/{slug}/comments/{number}/index.html"


def page_url(config: SiteConfig, slug: str, number: int) -> str:
    return f"{config.post_url(slug)}comments/{number}/"


def places(config: SiteConfig, slug: str, pages: Sequence[Sequence[Thread]]) -> list[CommentPages]:
    """Each page's ``CommentPages``, in the order of ``pages`` (from ``split``)."""
    last, post_url = len(pages), config.post_url(slug)
    out = []
    for n in range(1, last + 1):
        out.append(
            CommentPages(
                number=n,
                post_url=post_url,
                older_url=page_url(config, slug, n - 1) if n > 1 else "",
                newer_url=(
                    ""
                    if n == last
                    else post_url + "#comments"
                    if n + 1 == last
                    else page_url(config, slug, n + 1)
                ),
                older_replies=sum(replies(p) for p in pages[:-1]) if n == last else None,
            )
        )
    return out


_DEPTH = [b"\0%d\0" % depth for depth in range(64)]
"""The marker of each depth in a page digest (``threads.MAX_THREAD_DEPTH`` is 20)."""


def page_digest(threads: Sequence[Thread], file_hashes: Mapping[str, bytes]) -> str:
    """What an older page shows of its replies, hashed: each reply's place in the tree
    (its depth, in the order printed) and its file (``BuildComments.file_hashes``: its id
    and the sha256 of its file), so a reply edited, added or removed on this page
    changes it and a change on another page does not.  A build computes it for every
    older page of each post with a change, so it does one lookup and one append a
    reply and hashes once."""
    parts: list[bytes] = []
    append, missing = parts.append, b"?"
    stack: list[tuple[Thread, int]] = []
    for top in threads:
        append(file_hashes.get(top.comment.id, missing))
        if not top.children:  # most replies
            continue
        stack.extend((child, 1) for child in reversed(top.children))
        while stack:
            node, depth = stack.pop()
            append(_DEPTH[min(depth, 63)])
            append(file_hashes.get(node.comment.id, missing))
            stack.extend((child, depth + 1) for child in reversed(node.children))
        append(_DEPTH[0])  # the thread ends
    return hashlib.sha256(b"".join(parts)).hexdigest()
