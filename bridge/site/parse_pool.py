"""A cold build's posts and pages parsed in forked workers, one per core.

Each worker reads its share of the files the parse cache did not have, parses their front
matter, renders their Markdown and links their inline hashtags, so the parent only lists
and stats the files and every core works from the start of the build (the parent used to
read and parse every file before a pool rendered the Markdown: a phase on one core).

A worker never opens a database: it is given the keys of the bodies the Markdown cache
holds (``MarkdownRenderer.keys``) and leaves those bodies to the parent, which reads
their HTML from the cache and stores what the workers rendered.  A file a worker could not
parse comes back as None, and the parent parses it again in-process, which raises its
``ContentError`` in file order, as a build without workers does.

As ``bridge.site.parallel`` does for the outputs: only from a process with one thread
(forking copies locks other threads hold; the daemon builds in a thread), with ``fork``
(workers inherit the settings and never import ``__main__`` again), and in-process
whenever a pool cannot be had.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

from bridge.config import SiteConfig
from bridge.site import inline_tags
from bridge.site.posts import Page, Post

PARALLEL_MIN = 64
"""Fewer files to parse than this are parsed in-process (a worker pool costs ~0.1 s)."""

Task = tuple[Literal["post", "page"], str, str]  # kind, path, path relative to the site
# The item, and the HTML its Markdown gave when rendered here (the item's is then final:
# a post's hashtags are linked); None for a body the Markdown cache holds, whose ``html``
# is empty for the parent to fill.  None: the worker failed on this file.
Parsed = tuple[Post | Page, str | None] | None
Render = Callable[[str], str]


class Parser(NamedTuple):
    """``bridge.site.content``'s parsing, handed over (that module imports this one)."""

    post: Callable[[Path, str, SiteConfig, Render], Post]
    page: Callable[[Path, str, SiteConfig, Render], Page]
    cache_key: Callable[[str], str]  # a body's key in the Markdown cache
    markdown: Render


_forked: tuple[SiteConfig, Parser, frozenset[str]] | None = None  # set before forking


def parse(
    config: SiteConfig, parser: Parser, tasks: list[Task], cached: frozenset[str]
) -> list[Parsed] | None:
    """Parse ``tasks`` in forked workers, in order; None when workers cannot be used here
    (too few files, one core, more than one thread) and nothing was parsed.

    ``cached``: the Markdown cache's keys; those bodies are not rendered."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _forked
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(tasks) < PARALLEL_MIN or threading.active_count() > 1:
        return None
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        return None
    # Small chunks: posts differ in length, and the last chunk must not keep one core
    # working alone.
    chunk = max(1, min(16, len(tasks) // (workers * 8)))
    _forked = (config, parser, cached)
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(_parse_one, tasks, chunksize=chunk))
    except (OSError, BrokenProcessPool):  # pragma: no cover - the caller parses in-process
        return None
    finally:
        _forked = None


def _parse_one(task: Task) -> Parsed:
    """In a worker: one file parsed, its Markdown rendered unless cached."""
    assert _forked is not None
    config, parser, cached = _forked
    kind, path, rel = task
    rendered: list[str] = []

    def render(body: str) -> str:
        if cached and parser.cache_key(body) in cached:
            return ""  # the parent reads it from the cache
        rendered.append(parser.markdown(body))
        return rendered[0]

    try:
        if kind == "page":
            page = parser.page(Path(path), rel, config, render)
            return page, rendered[0] if rendered else None
        post = parser.post(Path(path), rel, config, render)
        if not rendered:
            return post, None
        if config.inline_hashtags:
            post = inline_tags.tag_post(post, config)
        return post, rendered[0]
    except Exception:  # noqa: BLE001 - the parent parses it again to raise the error
        return None
