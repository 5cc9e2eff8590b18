"""An incremental build equals a cold build of the same content, file by file.

Every cache a rebuild leans on (the parse cache, the manifest's keys, the list pages keyed
on what they show of each post, a watcher's memory) must never leave a file behind that a
build from nothing would write differently.  Each step edits the content the way an
author does, rebuilds over the previous output, and compares the whole tree with a cold
build of a copy that has no caches and no previous output.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_build
from bridge.site import build_stamp, parse_cache

POSTS = "content/posts"
ARTICLE = f"{POSTS}/2026-01-10-first-article.md"
NOTE = f"{POSTS}/2026-01-12-quick-note.md"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _cold(site: Path, dest: Path) -> dict[str, bytes]:
    """A build of a copy of ``site`` without caches, manifests or output."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(site, dest, ignore=shutil.ignore_patterns("public", "cache", "manifest-*"))
    site_build.build(config_mod.load(dest))
    return _tree(dest / "public")


def _edit(site: Path, rel: str, old: str, new: str) -> None:
    path = site / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _new_post(site: Path) -> None:
    (site / POSTS / "2026-01-30-brand-new.md").write_text(
        "---\ntitle: Brand new\ndate: 2026-01-30T08:00:00Z\ntags: [python, fresh]\n"
        "summary: A new post.\n---\nA new post with #inline tags and a body.\n",
        encoding="utf-8",
    )


EDITS: list[tuple[str, Callable[[Path], None]]] = [
    ("body", lambda s: _edit(s, ARTICLE, "This is the **first**", "This is the **edited**")),
    ("title", lambda s: _edit(s, ARTICLE, "title: The first article", "title: A retitled one")),
    ("tags", lambda s: _edit(s, ARTICLE, "tags: [python, IndieWeb]", "tags: [python, moved]")),
    ("date", lambda s: _edit(s, NOTE, "date: 2026-01-12", "date: 2026-01-25")),
    ("note body", lambda s: _edit(s, NOTE, "\n---\n", "\n---\nA new first line.\n\n")),
    ("new post", _new_post),
    ("delete", lambda s: (s / ARTICLE).unlink()),
]


def _contents(site: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (site / "content").rglob("*") if p.is_file()}


def _written(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    """The names a watcher would have seen written between two snapshots."""
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


@pytest.mark.parametrize("mode", ["command", "resident", "watched"])
def test_incremental_builds_equal_cold_builds(site: Path, tmp_path: Path, mode: str) -> None:
    """``resident``: one process builds after each edit, keeping what it read (as
    ``serve --watch`` does); ``watched``: the same, told which files were written (as
    its watcher tells it, so the others are not even stat'ed); ``command``: each build
    starts from the files, and from what the last command build saved (``kept``)."""
    config = config_mod.load(site)
    resident = mode != "command"
    site_build.build(config)
    for name, edit in EDITS:
        before = _contents(site)
        edit(site)
        if not resident:
            site_build.forget_resident_state()
        if mode == "watched":
            parse_cache.watched(config, _written(before, _contents(site)))
        with contextlib.nullcontext() if resident else build_stamp.for_command():
            result = site_build.build(config)
        cold = _cold(site, tmp_path / f"cold-{name.replace(' ', '-')}")
        trees = {"public": _tree(config.output_dir)}
        if resident:  # a second folder: the blocks this process kept are not its own
            other = tmp_path / "other-public"
            site_build.build(config, out_dir=other)
            trees["other"] = _tree(other)
        for folder, incremental in trees.items():
            assert incremental.keys() == cold.keys(), (name, folder)
            differ = sorted(rel for rel in cold if incremental[rel] != cold[rel])
            assert differ == [], f"{folder} after the {name} edit"
        assert result.written > 0, name  # each edit changed something


def test_a_body_edit_leaves_the_tag_pages_of_a_summarised_post_alone(site: Path) -> None:
    """The default theme lists a titled post by its summary: its tag pages keep their
    keys when only its body changes, and change when its title does."""
    config = config_mod.load(site)
    site_build.build(config)
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    changed = site_build.build(config).changed
    assert "posts/first-article/index.html" in changed
    assert not [p for p in changed if p.startswith("tags/")]
    _edit(site, ARTICLE, "title: The first article", "title: A retitled one")
    changed = site_build.build(config).changed
    assert "tags/python/index.html" in changed


def test_a_site_template_for_entries_keys_tag_pages_on_the_whole_post(site: Path) -> None:
    """A site's own ``_entry.html`` may show anything of a post (here its body): then a
    body edit re-renders the tag pages too."""
    templates = site / "templates"
    templates.mkdir(exist_ok=True)
    theme = config_mod.DEFAULT_THEME / "templates" / "_entry.html"
    (templates / "_entry.html").write_text(
        theme.read_text(encoding="utf-8") + "{{ post.html | safe }}\n", encoding="utf-8"
    )
    config = config_mod.load(site)
    site_build.build(config)
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    changed = site_build.build(config).changed
    assert "tags/python/index.html" in changed
    assert b"<strong>edited</strong>" in (config.output_dir / "tags/python/index.html").read_bytes()


def test_a_write_no_watcher_reported_is_built_by_the_next_full_check(
    site: Path, tmp_path: Path
) -> None:
    """Told that nothing was written, a resident build keeps its rows unchecked (the
    shortcut is real); the build after it, with no word from a watcher (what the watcher
    sends after lost events, a failed build, a build asked for from outside, and once a
    minute), checks every file and equals a cold build."""
    config = config_mod.load(site)
    site_build.build(config)
    _edit(site, ARTICLE, "This is the **first**", "This is the **missed**")
    page = config.output_dir / "posts/first-article/index.html"
    parse_cache.watched(config, set())
    site_build.build(config)
    assert b"<strong>missed</strong>" not in page.read_bytes()
    parse_cache.watched(config, None)
    site_build.build(config)
    assert b"<strong>missed</strong>" in page.read_bytes()
    assert _tree(config.output_dir) == _cold(site, tmp_path / "cold")


def test_a_word_from_a_watcher_is_not_taken_over_rows_another_process_wrote(
    site: Path,
) -> None:
    """When another connection wrote the parse cache since this process's last build (a
    command run beside ``serve --watch``), the rows are read again and every file is
    checked, whatever the watcher said: the other writer may have recorded a file as it
    was before a write this watcher reported to an earlier build."""
    config = config_mod.load(site)
    site_build.build(config)
    _edit(site, ARTICLE, "This is the **first**", "This is the **other**")
    with contextlib.closing(sqlite3.connect(config.cache_dir / "parsed.sqlite3")) as con, con:
        con.execute("UPDATE items SET mtime_ns = mtime_ns + 1")  # another writer
    parse_cache.watched(config, set())
    site_build.build(config)
    page = config.output_dir / "posts/first-article/index.html"
    assert b"<strong>other</strong>" in page.read_bytes()
