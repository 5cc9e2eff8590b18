"""The keys of the list pages: the home pages, the tag pages and the archive.

Each list page is keyed on what it shows of each post it lists (``plan_keys``).  Making
those keys goes through every post: grouping 10,000 posts by tag, and hashing what each
list shows of each, was a fifth of a watch-mode rebuild.  A process that builds again
(``serve --watch``, the daemon) keeps the last lists it made with the posts they were made
from (``_last``).  When the posts are the same objects but a few (the parse cache keeps an
unchanged post's object), and each of those few shows in every list exactly what the one
it replaces showed (``_face``: a body edit of a summarised post), every key would come out
the same: the last keys are taken, with the new posts put in the lists they render from.
Otherwise, and in a fresh process, the lists are made anew.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.site import featured
from bridge.site.plan_keys import key_of
from bridge.site.posts import Post, tag_slug

Entry = Callable[[Post], str]
MAX_SWAPS = 64  # more posts changed than this: the lists are made anew


@dataclass(frozen=True)
class Lists:
    """The keys of the list pages and the posts each renders, in output order."""

    made_of: tuple[str, ...]  # base key, the templates' digests, the entry functions
    posts: tuple[Post, ...]  # what the keys were made from
    home: tuple[tuple[str, str, list[Post]], ...]  # (path, key, the page's posts)
    tags: tuple[tuple[str, str, str, list[Post]], ...]  # (slug, tag, key, tagged posts)
    archive: str  # the archive's key
    slugs: dict[str, str]  # tag -> its slug


_last: Lists | None = None


def lists(
    posts: list[Post],
    base_key: str,
    templates: tuple[str, str, str],
    entries: tuple[Entry, Entry],
    per_page: int,
) -> Lists:
    """The list pages of ``posts`` (newest first); ``templates``: the digests of the home,
    tag and archive templates; ``entries``: what a home and a tag page show of a post."""
    global _last
    made_of = (base_key, *templates, *(entry.__name__ for entry in entries), str(per_page))
    last = _last
    found = _reuse(last, posts, made_of, entries) if last is not None else None
    if found is None:
        found = _make(posts, made_of, entries, per_page)
    _last = found
    return found


def forget() -> None:
    """Drop the kept lists (as a fresh process starts)."""
    global _last
    _last = None


def archive_entry(post: Post) -> str:
    """What the archive shows of a post: a titled post's body is not part of it."""
    return f"{post.slug}:{post.date.isoformat()}:{post.title or post.digest}"


def _face(post: Post, entries: tuple[Entry, Entry]) -> tuple[object, ...]:
    """Everything of a post that any list key or list order is made from."""
    index_entry, tag_entry = entries
    return (index_entry(post), tag_entry(post), archive_entry(post), post.tags, post.pinned)


def _make(
    posts: list[Post], made_of: tuple[str, ...], entries: tuple[Entry, Entry], per_page: int
) -> Lists:
    base_key, index_template, tag_template, archive_template = made_of[:4]
    index_entry, tag_entry = entries
    total = max(1, -(-len(posts) // per_page))
    listed = featured.home_order(posts)  # pinned posts first
    home = []
    for n in range(1, total + 1):
        chunk = listed[(n - 1) * per_page : n * per_page]
        path = "index.html" if n == 1 else f"page/{n}/index.html"
        key = key_of(base_key, index_template, str(n), str(total), *map(index_entry, chunk))
        home.append((path, key, chunk))
    grouped: dict[str, tuple[str, list[Post]]] = {}
    slugs: dict[str, str] = {}
    for post in posts:
        for tag in post.tags:
            slug = slugs.get(tag) or slugs.setdefault(tag, tag_slug(tag))
            grouped.setdefault(slug, (tag, []))[1].append(post)
    tags = tuple(
        (slug, tag, key_of(base_key, tag_template, slug, *map(tag_entry, tagged)), tagged)
        for slug, (tag, tagged) in sorted(grouped.items())
    )
    archive = key_of(base_key, archive_template, "archive", *map(archive_entry, posts))
    return Lists(made_of, tuple(posts), tuple(home), tags, archive, slugs)


def _reuse(
    last: Lists, posts: list[Post], made_of: tuple[str, ...], entries: tuple[Entry, Entry]
) -> Lists | None:
    """The last lists with ``posts`` in them, when every key would come out the same."""
    if last.made_of != made_of or len(last.posts) != len(posts):
        return None
    swaps: dict[int, Post] = {}
    touched: set[str] = set()
    for old, new in zip(last.posts, posts, strict=True):
        if old is new:
            continue
        if len(swaps) == MAX_SWAPS or _face(old, entries) != _face(new, entries):
            return None
        swaps[id(old)] = new
        touched.update(last.slugs[tag] for tag in old.tags)
    if not swaps:
        return last

    def put(listed: list[Post]) -> list[Post]:
        return [swaps.get(id(post), post) for post in listed]

    home = tuple(
        (path, key, put(chunk)) if any(id(p) in swaps for p in chunk) else (path, key, chunk)
        for path, key, chunk in last.home
    )
    tags = tuple(
        (slug, tag, key, put(tagged)) if slug in touched else (slug, tag, key, tagged)
        for slug, tag, key, tagged in last.tags
    )
    return Lists(made_of, tuple(posts), home, tags, last.archive, last.slugs)
