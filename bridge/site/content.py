"""Read ``content/``: YAML front matter + Markdown into ``Post`` and ``Page`` values.

Each file is parsed once; its front matter is validated key by key in ``frontmatter``.
Bodies are rendered by ``markdown_render`` (whose cache means an unchanged body is never
rendered twice), many files at once in forked workers (``parse_pool``), and a parsed file
is kept in the parse cache (``parse_cache``).  Every problem is a ``ContentError`` whose
message starts with ``content/posts/x.md:LINE:``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site import frontmatter, hashtags, inline_tags, markdown_render, parse_pool
from bridge.site import posts as posts_module
from bridge.site.frontmatter import (
    PAGE_KEYS,
    POST_KEYS,
    ParsedYaml,
    key_line,
    page_fields,
    post_fields,
    split_front_matter,
)
from bridge.site.markdown_render import (
    RENDER_VERSION,
    MarkdownRenderer,
    cache_key,
    render_in_worker,
    store_rendered,
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

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")


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
    return make_post(path, rel, config, renderer.render, renderer.yaml)


def parse_page(path: Path, rel: str, config: SiteConfig, renderer: MarkdownRenderer) -> Page:
    return make_page(path, rel, config, renderer.render, renderer.yaml)


def make_post(
    path: Path,
    rel: str,
    config: SiteConfig,
    render: Callable[[str], str],
    parsed: ParsedYaml | None = None,
) -> Post:
    """The post in ``path``, its body turned into HTML by ``render``."""
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel, parsed)
    fields = post_fields(meta, text, rel, config, slugify(_DATE_PREFIX.sub("", path.stem)))
    return Post(
        source=rel,
        body=body,
        html=render(body),
        digest=hashlib.sha256(raw).hexdigest(),
        **fields,
    )


def make_page(
    path: Path,
    rel: str,
    config: SiteConfig,
    render: Callable[[str], str],
    parsed: ParsedYaml | None = None,
) -> Page:
    """The page in ``path``, its body turned into HTML by ``render``."""
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel, parsed)
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
    modules = (__file__, markdown_render.__file__, posts_module.__file__, frontmatter.__file__)
    cache = ParseCache(config, RENDER_VERSION, (*modules, inline_tags.__file__, hashtags.__file__))
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
