"""Posts and pages parsed in forked workers (``bridge.site.parse_pool``) are the ones an
in-process parse makes, use the Markdown cache as it does, and a broken file fails the
build with the same one error, the first in file order."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge.errors import ContentError
from bridge.site import content, parse_pool
from bridge.site.posts import Page, Post


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Workers for any number of files on two cores; the list counts the pools that ran."""
    monkeypatch.setattr(parse_pool, "PARALLEL_MIN", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    forked: list[int] = []
    parse = parse_pool.parse

    def counting(*args: Any) -> list[parse_pool.Parsed] | None:
        result = parse(*args)
        if result is not None:
            forked.append(len(result))
        return result

    monkeypatch.setattr(parse_pool, "parse", counting)
    return forked


def _load(site: Path) -> tuple[list[Post], list[Page], content.MarkdownRenderer]:
    config = config_mod.load(site)
    renderer = content.MarkdownRenderer(config.cache_dir)
    try:
        posts, pages = content.load(config, drafts=True, renderer=renderer)
    finally:
        renderer.close()
    return posts, pages, renderer


def _forget(site: Path, markdown: bool = True) -> None:
    cache = config_mod.load(site).cache_dir
    for name in ("parsed.sqlite3", *(("markdown.sqlite3",) if markdown else ())):
        for suffix in ("", "-wal", "-shm"):
            (cache / f"{name}{suffix}").unlink(missing_ok=True)


def _in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_pool, "PARALLEL_MIN", 10**9)


def _add_posts(site: Path, count: int) -> None:
    for i in range(count):
        (site / "content" / "posts" / f"2025-03-{i + 1:02d}-extra-{i}.md").write_text(
            f"---\ntitle: Extra {i}\ndate: 2025-03-{i + 1:02d}\ntags: [more]\n---\n"
            f"Text with *emphasis*, a #hashtag{i} and a [link](https://example.org/{i}).\n",
            encoding="utf-8",
        )


def test_forked_parse_makes_what_an_in_process_parse_makes(
    site: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_posts(site, 6)
    posts, pages, renderer = _load(site)
    assert forks == [len(posts) + len(pages)]  # every file, in workers
    assert renderer.rendered == len(posts) + len(pages) and renderer.cached == 0
    assert any("hashtag" in tag for post in posts for tag in post.tags)  # linked in workers
    _forget(site)
    _in_process(monkeypatch)
    serial_posts, serial_pages, serial = _load(site)
    assert len(forks) == 1
    assert serial.rendered == renderer.rendered
    assert serial_posts == posts and serial_pages == pages


def test_workers_leave_cached_bodies_to_the_cache(site: Path, forks: list[int]) -> None:
    _add_posts(site, 3)
    first_posts, first_pages, first = _load(site)
    _forget(site, markdown=False)  # parsed again, but each body's HTML is in the cache
    posts, pages, renderer = _load(site)
    assert len(forks) == 2
    assert renderer.rendered == 0 and renderer.cached == first.rendered
    assert (posts, pages) == (first_posts, first_pages)
    # A changed body is rendered (and tagged) in a worker; the others still come cached.
    edited = site / "content" / "posts" / "2025-03-02-extra-1.md"
    edited.write_text(edited.read_text().replace("*emphasis*", "**#strong**"))
    _forget(site, markdown=False)
    posts, _, renderer = _load(site)
    assert renderer.rendered == 1 and renderer.cached == first.rendered - 1
    post = {p.slug: p for p in posts}["extra-1"]
    assert "<strong>" in post.html and "strong" in post.tags


def test_a_broken_file_fails_as_in_process_the_first_in_order(
    site: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_posts(site, 4)
    posts = site / "content" / "posts"
    (posts / "2025-03-02-extra-1.md").write_text("---\ntitle: [\n---\nBody.\n")
    (posts / "2025-03-04-extra-3.md").write_text("no front matter\n")
    config = config_mod.load(site)
    with pytest.raises(ContentError) as forked:
        content.load(config)
    assert forks  # the pool ran; the error was raised by parsing that file again here
    _forget(site)
    _in_process(monkeypatch)
    with pytest.raises(ContentError) as serial:
        content.load(config)
    assert str(forked.value) == str(serial.value)
    assert forked.value.path == "content/posts/2025-03-02-extra-1.md"


def test_a_duplicate_slug_is_found_after_a_forked_parse(site: Path, forks: list[int]) -> None:
    _add_posts(site, 2)
    shutil.copy(
        site / "content" / "posts" / "2025-03-01-extra-0.md",
        site / "content" / "posts" / "2025-03-09-extra-0.md",
    )
    with pytest.raises(ContentError) as info:
        content.load(config_mod.load(site))
    assert forks
    assert info.value.path == "content/posts/2025-03-09-extra-0.md"
    assert "duplicate slug 'extra-0'" in info.value.message


def test_no_workers_from_a_process_with_threads(site: Path, forks: list[int]) -> None:
    """The daemon builds in a thread: forking then could copy a lock another thread holds,
    so the files are parsed in-process, to the same posts."""
    import threading

    _add_posts(site, 3)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        posts, _, renderer = _load(site)
    finally:
        release.set()
        other.join()
    assert forks == []
    assert renderer.rendered == len(posts) + 1  # and the page
