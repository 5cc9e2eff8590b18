"""Read ``content/``: YAML front matter + Markdown into ``Post`` and ``Page`` values.

Each file is parsed once; its front matter is validated key by key in ``frontmatter``.
Rendered Markdown is cached by the hash of the file's body in
``.indiebridge/cache/markdown.sqlite3`` so an unchanged post is never rendered twice.  Every
problem is a ``ContentError`` whose message starts with ``content/posts/x.md:LINE:``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import markdown

from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site import frontmatter, hashtags, inline_tags, parse_pool
from bridge.site import posts as posts_module
from bridge.site.cache_log import close_keeping_log, open_wal
from bridge.site.frontmatter import (
    PAGE_KEYS,
    POST_KEYS,
    key_line,
    page_fields,
    post_fields,
    split_front_matter,
)
from bridge.site.parse_cache import ParseCache
from bridge.site.posts import Page, Post, slugify

__all__ = [
    "PAGE_KEYS",
    "POST_KEYS",
    "RESERVED_PAGE_SLUGS",
    "MarkdownRenderer",
    "load",
    "parse_page",
    "parse_post",
    "split_front_matter",
]

MD_EXTENSIONS = ["extra", "sane_lists", "smarty"]
# Bump when the Markdown settings change, so cached HTML is re-rendered.  The prescanning
# passes render the same bytes as the stock ones (markdown_inline, markdown_blocks), so
# they are not part of it.
RENDER_VERSION = "md1:" + ",".join(MD_EXTENSIONS) + ":" + markdown.__version__


def new_converter() -> markdown.Markdown:
    """The site's Markdown converter: ``MD_EXTENSIONS``, with the inline passes and the
    block parser prescanned (imported here: a build whose bodies are cached needs neither)."""
    from bridge.site import markdown_inline

    return markdown.Markdown(
        extensions=[*_extension_objects(), markdown_inline.PrescanExtension()],
        output_format="html",
    )


def _extension_objects() -> list[markdown.extensions.Extension]:
    """``MD_EXTENSIONS`` as objects, ``extra`` unfolded into its parts in its own order.

    Named, each extension is first looked up among every installed package's entry
    points (``markdown.util.get_installed_extensions``: a scan of all installed
    distributions' metadata, about 8 ms on a small environment, more on a large one), which
    a one-post rebuild paid on every run.  ``extra`` itself only registers its parts by
    name with an empty configuration, as this does.  The converters' processors and
    output are compared with the named set in ``tests/site/test_markdown_inline.py``.
    """
    import importlib

    from markdown.extensions import extra

    from bridge.site.markdown_pygments import import_fenced_code

    import_fenced_code()  # without Pygments, which this converter never calls
    names = [
        part for name in MD_EXTENSIONS for part in (extra.extensions if name == "extra" else [name])
    ]
    made: list[markdown.extensions.Extension] = []
    for name in names:
        module = importlib.import_module(f"markdown.extensions.{name}")
        made.append(module.makeExtension())
    return made


_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")


def cache_key(text: str) -> str:
    """A Markdown body's key in the cache: its hash with the Markdown settings'."""
    return hashlib.sha256((RENDER_VERSION + "\0" + text).encode()).hexdigest()


_worker_md: markdown.Markdown | None = None


def render_in_worker(text: str) -> str:
    global _worker_md
    if _worker_md is None:
        _worker_md = new_converter()
    return _worker_md.reset().convert(text)


class MarkdownRenderer:
    """Markdown -> HTML with a content-hash cache on disk (one SQLite file).

    With ``defer()``, a body missing from the cache is not rendered at once: ``render``
    returns a placeholder and ``finish()`` renders them all and maps each placeholder to
    its HTML (so a broken file fails before any Markdown).  Many files to parse (a first
    build) are parsed and rendered in forked workers instead (``parse_pool``).

    The cache was one file per body; creating and opening thousands of small files cost
    more than a second per thousand posts on ordinary disks, a single file a few ms.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self._converter: markdown.Markdown | None = None  # made when a body is not cached
        self.cache_path = cache_dir / "markdown.sqlite3" if cache_dir else None
        self.rendered = 0
        self.cached = 0
        self._con: sqlite3.Connection | None = None
        self._deferring = False
        self._pending: dict[str, str] = {}  # placeholder -> Markdown

    def _md(self) -> markdown.Markdown:
        # Setting up the extensions takes ~35 ms: not worth it when every body is cached.
        if self._converter is None:
            self._converter = new_converter()
        return self._converter

    def _db(self) -> sqlite3.Connection | None:
        if self._con is None and self.cache_path is not None:
            try:
                con = open_wal(self.cache_path, timeout=30, isolation_level=None)
                con.execute("CREATE TABLE IF NOT EXISTS html (key TEXT PRIMARY KEY, html TEXT)")
            except (OSError, sqlite3.Error):
                self.cache_path = None  # a cache that cannot be opened only costs speed
                return None
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None and self.cache_path is not None:
            close_keeping_log(self._con, self.cache_path)  # no checkpoint at each close
        self._con = None

    def defer(self) -> None:
        self._deferring = True

    def cancel(self) -> None:
        self._deferring = False
        self._pending = {}

    def finish(self) -> dict[str, str]:
        """Render what ``render`` deferred: placeholder -> HTML (and stop deferring)."""
        self._deferring = False
        pending, self._pending = self._pending, {}
        texts = list(pending.values())
        htmls = [self._md().reset().convert(text) for text in texts]
        self._store(list(zip(texts, htmls, strict=True)))
        return dict(zip(pending, htmls, strict=True))

    def _key(self, text: str) -> str:
        return cache_key(text)

    def keys(self) -> frozenset[str]:
        """The keys of every body in the cache (``cache_key``), for workers that must
        know what is cached without opening the database after a fork."""
        con = self._db()
        if con is None:
            return frozenset()
        try:
            return frozenset(row[0] for row in con.execute("SELECT key FROM html"))
        except sqlite3.Error:
            return frozenset()

    def render(self, text: str) -> str:
        key = self._key(text)
        con = self._db()
        if con is not None:
            try:
                row = con.execute("SELECT html FROM html WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None:
                self.cached += 1
                return str(row[0])
        if self._deferring:
            placeholder = f"\0markdown:{key}"
            self._pending[placeholder] = text
            return placeholder
        html = self._md().reset().convert(text)
        self._store([(text, html)])
        return html

    def _store(self, rendered: list[tuple[str, str]]) -> None:
        self.rendered += len(rendered)
        con = self._db()
        if con is None or not rendered:
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT OR REPLACE INTO html(key, html) VALUES (?, ?)",
                    [(self._key(text), html) for text, html in rendered],
                )
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs speed


def _read(path: Path, rel: str) -> tuple[str, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContentError(rel, 1, f"cannot be read: {exc.strerror}") from None
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(rel, line, "not valid UTF-8 text") from None


def parse_post(path: Path, rel: str, config: SiteConfig, renderer: MarkdownRenderer) -> Post:
    return make_post(path, rel, config, renderer.render)


def parse_page(path: Path, rel: str, config: SiteConfig, renderer: MarkdownRenderer) -> Page:
    return make_page(path, rel, config, renderer.render)


def make_post(path: Path, rel: str, config: SiteConfig, render: Callable[[str], str]) -> Post:
    """The post in ``path``, its body turned into HTML by ``render``."""
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel)
    fields = post_fields(meta, text, rel, config, slugify(_DATE_PREFIX.sub("", path.stem)))
    return Post(
        source=rel,
        body=body,
        html=render(body),
        digest=hashlib.sha256(raw).hexdigest(),
        **fields,
    )


def make_page(path: Path, rel: str, config: SiteConfig, render: Callable[[str], str]) -> Page:
    """The page in ``path``, its body turned into HTML by ``render``."""
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel)
    fields = page_fields(meta, text, rel, config, slugify(path.stem))
    return Page(
        source=rel,
        body=body,
        html=render(body),
        digest=hashlib.sha256(raw).hexdigest(),
        **fields,
    )


def _markdown_names(folder: Path) -> list[str]:
    """The Markdown files' names in ``folder``, sorted (names, not paths: pathlib's cost
    for 10,000 posts was a tenth of a rebuild)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(
                e.name
                for e in entries
                if e.name.endswith(".md") and not e.name.startswith(".") and e.is_file()
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


RESERVED_PAGE_SLUGS = {"posts", "tags", "archive", "page", "ap", "static", "feed", "inbox"}


def load(
    config: SiteConfig, *, drafts: bool = False, renderer: MarkdownRenderer | None = None
) -> tuple[list[Post], list[Page]]:
    """Parse every post and page; posts newest first.

    Raises:
        ContentError: for the first broken file (all files are still checked for
            duplicate slugs only after each parses).
    """
    own = renderer is None
    renderer = renderer or MarkdownRenderer(config.cache_dir)
    modules = (__file__, posts_module.__file__, frontmatter.__file__, inline_tags.__file__)
    cache = ParseCache(config, RENDER_VERSION, (*modules, hashtags.__file__))
    renderer.defer()
    try:
        posts, pages, tagged = _load(config, drafts, renderer, cache)
        done = renderer.finish()
        if done:
            pages = [replace(p, html=done[p.html]) if p.html in done else p for p in pages]
            cache.rendered(done)
        if config.inline_hashtags:  # once Markdown is done; cached posts are tagged already
            cache.tag_parsed(
                lambda post: post if post.source in tagged else inline_tags.tag_post(post, config)
            )
        posts = [cache.post(p.source) for p in posts]  # with their HTML, tagged
        cache.save()
    except BaseException:
        renderer.cancel()
        raise
    finally:
        cache.close()
        if own:
            renderer.close()
    return posts, pages


_store_con: tuple[int, Path, sqlite3.Connection] | None = None  # (pid, path, connection)


def store_rendered(cache_path: Path | None, rendered: list[tuple[str, str]]) -> None:
    """Add (key, HTML) rows to the Markdown cache at ``cache_path`` through this process's
    own connection (a forked worker's, never one its parent opened; kept for the worker's
    next rows, as closing the last connection checkpoints and deletes the WAL file)."""
    global _store_con
    if cache_path is None:
        return
    if _store_con is None or _store_con[:2] != (os.getpid(), cache_path):
        try:
            con = sqlite3.connect(cache_path, timeout=30, isolation_level=None)
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            return
        _store_con = (os.getpid(), cache_path, con)
    con = _store_con[2]
    with contextlib.suppress(sqlite3.Error):  # a cache that cannot be written only costs speed
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR REPLACE INTO html(key, html) VALUES (?, ?)", rendered)
        finally:
            con.execute("COMMIT")


PARSER = parse_pool.Parser(
    make_post, make_page, cache_key, render_in_worker, partial(store_rendered, None)
)


def _cached(
    cache: ParseCache, path: str, rel: str, renderer: MarkdownRenderer
) -> Post | Page | None:
    item = cache.get(path, rel)
    if item is not None:
        renderer.cached += 1  # its Markdown comes from a cache, as it would have
    return item


def _files(config: SiteConfig, section: str) -> list[tuple[str, str]]:
    """(path, path relative to the site) of each Markdown file of ``content/<section>``."""
    folder = config.content_dir / section
    prefix = folder.relative_to(config.site_dir).as_posix()
    return [(f"{folder}/{name}", f"{prefix}/{name}") for name in _markdown_names(folder)]


def _parsed_in_workers(
    config: SiteConfig, todo: list[parse_pool.Task], renderer: MarkdownRenderer
) -> tuple[dict[str, Post | Page], set[str]]:
    """The files of ``todo`` parsed by ``parse_pool`` (none when it could not be used; a
    file a worker failed on is left out), and the posts whose hashtags it linked."""
    if len(todo) < parse_pool.PARALLEL_MIN:
        return {}, set()
    cached = renderer.keys()
    renderer.close()  # the workers write to the cache (reopened when next used)
    parser = PARSER._replace(store=partial(store_rendered, renderer.cache_path))
    results = parse_pool.parse(config, parser, todo, cached)
    if results is None:
        return {}, set()
    made: dict[str, Post | Page] = {}
    tagged: set[str] = set()
    for (_, _, rel), result in zip(todo, results, strict=True):
        if result is None:
            continue
        item, rendered_there = result
        if rendered_there:
            renderer.rendered += 1
            tagged.add(rel)
        else:  # a body the cache holds: read here
            item = replace(item, html=renderer.render(item.body))
        made[rel] = item
    return made, tagged


def _load(
    config: SiteConfig, drafts: bool, renderer: MarkdownRenderer, cache: ParseCache
) -> tuple[list[Post], list[Page], set[str]]:
    """Posts and pages, and the posts whose inline hashtags are linked already."""
    post_files, page_files = _files(config, "posts"), _files(config, "pages")
    known: dict[str, Post | Page] = {}
    for kind, files in ((Post, post_files), (Page, page_files)):
        for full, rel in files:
            item = _cached(cache, full, rel, renderer)
            if isinstance(item, kind):
                known[rel] = item
    todo: list[parse_pool.Task] = [
        *(("post", full, rel) for full, rel in post_files if rel not in known),
        *(("page", full, rel) for full, rel in page_files if rel not in known),
    ]
    made, tagged = _parsed_in_workers(config, todo, renderer)
    posts: list[Post] = []
    seen: dict[str, str] = {}
    for full, rel in post_files:
        post = known.get(rel)
        if not isinstance(post, Post):
            post = made.get(rel)
            if not isinstance(post, Post):  # (a worker's failure: raised here, in order)
                post = parse_post(Path(full), rel, config, renderer)
            cache.put(full, rel, post)
        if post.slug in seen:
            raise ContentError(
                rel,
                key_line(Path(full).read_text(encoding="utf-8"), "slug"),
                f"duplicate slug '{post.slug}' (also used by {seen[post.slug]})",
            )
        seen[post.slug] = rel
        if post.draft and not drafts:
            continue
        posts.append(post)
    pages: list[Page] = []
    page_seen: dict[str, str] = {}
    for full, rel in page_files:
        page = known.get(rel)
        if not isinstance(page, Page):
            page = made.get(rel)
            if not isinstance(page, Page):
                page = parse_page(Path(full), rel, config, renderer)
            cache.put(full, rel, page)
        if page.slug in page_seen or page.slug in RESERVED_PAGE_SLUGS:
            other = page_seen.get(page.slug, "a built-in section")
            raise ContentError(rel, 1, f"duplicate slug '{page.slug}' (also used by {other})")
        page_seen[page.slug] = rel
        pages.append(page)
    posts.sort(key=lambda p: (p.date, p.slug), reverse=True)
    return posts, pages, tagged
