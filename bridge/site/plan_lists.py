"""The keys of the list pages: the home pages, the tag pages and the archive.

Each list page is keyed on what it shows of each post it lists (``plan_keys``).  Making
those keys goes through every post: grouping 10,000 posts by tag, and hashing what each
list shows of each, was a fifth of a watch-mode rebuild.  A process that builds again
(``serve --watch``, the daemon) keeps the last lists it made with the posts they were made
from (``_last``).  When the posts are the same objects but a few (the parse cache keeps an
unchanged post's object), and each of those few stays in the same lists at the same place
(``_place``: its slug, date, tags and pin), only the pages that show one of them
differently (``_face``: a new title or summary) are keyed again, and the others keep
their keys (a body edit of a summarised post re-keys none); every list renders from the
new posts.  Otherwise, and in a fresh process, the lists are made anew.
``tests/site/test_plan_lists.py`` compares each with the lists made anew.
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
    shown: tuple[str, ...]  # what the archive shows of each post, in order
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
    """Everything of a post that a list page's key is made from."""
    index_entry, tag_entry = entries
    return (index_entry(post), tag_entry(post), archive_entry(post))


def _place(post: Post) -> tuple[object, ...]:
    """Everything of a post that decides which lists show it, and where."""
    return (post.slug, post.date, post.tags, post.pinned)


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
    shown = tuple(map(archive_entry, posts))
    archive = key_of(base_key, archive_template, "archive", *shown)
    return Lists(made_of, tuple(posts), tuple(home), tags, archive, shown, slugs)


def _reuse(
    last: Lists, posts: list[Post], made_of: tuple[str, ...], entries: tuple[Entry, Entry]
) -> Lists | None:
    """The last lists with ``posts`` in them, each page that shows a changed post
    differently keyed again; None when a change moves a post in or between lists."""
    if last.made_of != made_of or len(last.posts) != len(posts):
        return None
    swaps: dict[int, Post] = {}  # id of the old post -> the new one
    shown_anew: set[int] = set()  # ids of the old posts that show differently
    touched: set[str] = set()  # the tags of the changed posts
    archive = list(last.shown)
    for i, (old, new) in enumerate(zip(last.posts, posts, strict=True)):
        if old is new:
            continue
        if len(swaps) == MAX_SWAPS or _place(old) != _place(new):
            return None
        swaps[id(old)] = new
        touched.update(last.slugs[tag] for tag in old.tags)
        if _face(old, entries) != _face(new, entries):
            shown_anew.add(id(old))
            archive[i] = archive_entry(new)
    if not swaps:
        return last
    base_key, index_template, tag_template, archive_template = made_of[:4]
    index_entry, tag_entry = entries

    def put(listed: list[Post]) -> list[Post]:
        return [swaps.get(id(post), post) for post in listed]

    home = []
    for n, (path, key, chunk) in enumerate(last.home, start=1):
        if any(id(p) in swaps for p in chunk):
            if any(id(p) in shown_anew for p in chunk):
                entry = map(index_entry, put(chunk))
                key = key_of(base_key, index_template, str(n), str(len(last.home)), *entry)
            chunk = put(chunk)
        home.append((path, key, chunk))
    tags = []
    for slug, tag, key, tagged in last.tags:
        if slug in touched:
            if any(id(p) in shown_anew for p in tagged):
                key = key_of(base_key, tag_template, slug, *map(tag_entry, put(tagged)))
            tagged = put(tagged)
        tags.append((slug, tag, key, tagged))
    shown = tuple(archive)
    if shown != last.shown:
        archive_key = key_of(base_key, archive_template, "archive", *shown)
    else:
        archive_key = last.archive
    return Lists(made_of, tuple(posts), tuple(home), tuple(tags), archive_key, shown, last.slugs)
