"""A cold build's posts and pages parsed in forked workers, one per core.

Each worker reads its share of the files the parse cache did not have, parses their front
matter, renders their Markdown and links their inline hashtags, so the parent only lists
and stats the files and every core works from the start of the build (the parent used to
read and parse every file before a pool rendered the Markdown: a phase on one core).

A worker is given the keys of the bodies the Markdown cache holds
(``MarkdownRenderer.keys``) and leaves those bodies to the parent, which reads their HTML
from the cache; what it renders it adds to the cache itself, a run of files at a time,
through a connection of its own (the parent holds none while they run).  A file a
worker could not parse comes back as None, and the parent parses it again in-process,
which raises its ``ContentError`` in file order, as a build without workers does.

As ``bridge.site.parallel`` does for the outputs: only from a process with one thread
(forking copies locks other threads hold; the daemon builds in a thread), with ``fork``
(workers inherit the settings and never import ``__main__`` again), and in-process
whenever a pool cannot be had.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from bridge.config import SiteConfig
from bridge.site import inline_tags
from bridge.site.markdown_render import pickle_mapping
from bridge.site.parallel import fork_pool
from bridge.site.posts import Page, Post

PARALLEL_MIN = 64
"""Fewer files to parse than this are parsed in-process (a worker pool costs ~0.1 s)."""

Task = tuple[Literal["post", "page"], str, str]  # kind, path, path relative to the site
# The item, and whether its Markdown was rendered here (its ``html`` is then final: a
# post's hashtags are linked), else its body is in the Markdown cache and its ``html`` is
# empty for the parent to fill.  None: the worker failed on this file.
Parsed = tuple[Post | Page, bool] | None
Render = Callable[[str], str]


class Parser(NamedTuple):
    """``bridge.site.content``'s parsing, handed over (that module imports this one)."""

    post: Callable[[Path, str, SiteConfig, Render, _NewYaml], Post]
    page: Callable[[Path, str, SiteConfig, Render, _NewYaml], Page]
    cache_key: Callable[[str], str]  # a body's key in the Markdown cache
    markdown: Render
    # Adds (key, HTML) rows and front matter mappings to the Markdown cache, through a
    # connection of its own.
    store: Callable[[list[tuple[str, str]], list[tuple[str, bytes]]], None]


class _NewYaml:
    """The front matter a worker parses, pickled at once (what parsing it gave, before
    anything uses it), for the cache (``frontmatter.ParsedYaml``): a later edit to a body
    then needs no YAML parser."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bytes]] = []

    def get(self, raw: str) -> dict[str, Any] | None:
        return None

    def put(self, raw: str, data: dict[str, Any]) -> None:
        pickled = pickle_mapping(data)
        if pickled is not None:
            self.rows.append((raw, pickled))


_forked: tuple[SiteConfig, Parser, list[Task], frozenset[str]] | None = None  # before forking

RUN = 16
"""Files a worker takes at a time: posts differ in length, and the last run must not keep
one core working alone; each run's Markdown goes into the cache in one transaction."""


def parse(
    config: SiteConfig, parser: Parser, tasks: list[Task], cached: frozenset[str]
) -> list[Parsed] | None:
    """Parse ``tasks`` in forked workers, in order; None when workers cannot be used here
    (too few files, one core, more than one thread) and nothing was parsed.

    ``cached``: the Markdown cache's keys; those bodies are not rendered.  The caller must
    hold no connection to the Markdown cache: the workers open their own to add what they
    render (SQLite forbids using a connection across a fork, and a new one in the child
    would share the parent's locks)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _forked
    pool_for = fork_pool(len(tasks), PARALLEL_MIN)
    if pool_for is None:
        return None
    context, workers = pool_for
    runs = [(start, min(start + RUN, len(tasks))) for start in range(0, len(tasks), RUN)]
    results: list[Parsed] = []
    _forked = (config, parser, tasks, cached)
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for done in pool.map(_parse_run, runs):
                results += done
    except (OSError, BrokenProcessPool):  # pragma: no cover - the caller parses in-process
        return None
    finally:
        _forked = None
    return results


def _parse_run(bounds: tuple[int, int]) -> list[Parsed]:
    """In a worker: the files ``bounds`` of the list set before forking, parsed, and the
    Markdown rendered for them added to the cache."""
    assert _forked is not None
    config, parser, tasks, cached = _forked
    rendered: list[tuple[str, str]] = []
    front_matter = _NewYaml()
    done = [
        _parse_one(config, parser, task, cached, rendered, front_matter)
        for task in tasks[slice(*bounds)]
    ]
    if rendered or front_matter.rows:
        parser.store(rendered, front_matter.rows)
    return done


def _parse_one(
    config: SiteConfig,
    parser: Parser,
    task: Task,
    cached: frozenset[str],
    rendered: list[tuple[str, str]],
    front_matter: _NewYaml,
) -> Parsed:
    """One file parsed, its Markdown rendered (and appended to ``rendered``) unless cached."""
    kind, path, rel = task
    made: list[tuple[str, str]] = []

    def render(body: str) -> str:
        key = parser.cache_key(body)
        if key in cached:
            return ""  # the parent reads it from the cache
        made.append((key, parser.markdown(body)))
        return made[0][1]

    try:
        if kind == "page":
            item: Post | Page = parser.page(Path(path), rel, config, render, front_matter)
        else:
            item = parser.post(Path(path), rel, config, render, front_matter)
            if made and config.inline_hashtags:
                item = inline_tags.tag_post(item, config)
    except Exception:  # noqa: BLE001 - the parent parses it again to raise the error
        return None
    rendered += made
    return item, bool(made)
