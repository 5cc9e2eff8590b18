"""The parse cache: one SQLite row per file, found by its stat, checked by its hash.

An unchanged file is neither read nor parsed; a touched one (same bytes) stays cached; a
same-size edit inside the same clock tick is still seen; a broken cache file is rebuilt,
never an error; a cached post reads its body and HTML only when something uses them.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import content, parse_cache
from bridge.site.posts import Post

POST = "content/posts/2026-01-20-cached.md"
TEXT = '---\ntitle: "Cached"\ndate: 2026-01-20T10:00:00Z\ntags: [a]\n---\nHello @ {n}.\n'


def _write(site: Path, text: str, *, age: float = 10.0) -> Path:
    """Write POST, its mtime ``age`` seconds ago (older than the racy window)."""
    path = site / POST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _load(
    site: Path, *, resident: bool = False
) -> tuple[dict[str, Post], content.MarkdownRenderer]:
    """Load as a fresh command does (or, ``resident``, keeping what this process read)."""
    if not resident:
        parse_cache.forget_resident()
    config = config_mod.load(site)
    renderer = content.MarkdownRenderer(config.cache_dir)
    try:
        posts, _ = content.load(config, renderer=renderer)
    finally:
        renderer.close()
    return {p.source: p for p in posts}, renderer


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The post files the parse cache reads (to hash them)."""
    seen: list[str] = []
    real = open

    def spy(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith(POST):
            seen.append(str(file))
        return real(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", spy)
    return seen


def test_an_unchanged_file_is_neither_read_nor_parsed(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(site, TEXT.format(n=1))
    first, _ = _load(site)
    reads = _reads(monkeypatch)
    again, renderer = _load(site)
    assert reads == []
    assert isinstance(again[POST], parse_cache.StoredPost)
    assert renderer.rendered == 0
    assert again == first  # every field, the lazily read body and HTML included
    assert "Hello @ 1." in again[POST].body


def test_a_touched_file_stays_cached_and_its_new_stat_is_kept(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(site, TEXT.format(n=1))
    _load(site)
    stamp = time.time() - 5
    os.utime(path, (stamp, stamp))
    reads = _reads(monkeypatch)
    touched, _ = _load(site)
    assert len(reads) == 1  # hashed once, since the stat changed
    assert isinstance(touched[POST], parse_cache.StoredPost)
    _load(site)
    assert len(reads) == 1  # the new stat was recorded: not read again


def test_a_same_size_edit_with_the_same_mtime_is_seen(site: Path) -> None:
    """A write inside the clock tick of the last scan keeps size and mtime: a stat
    that recent is not trusted, so the file is hashed on the next build."""
    path = _write(site, TEXT.format(n=1), age=0)
    stat = path.stat()
    assert "Hello @ 1." in _load(site)[0][POST].html
    path.write_text(TEXT.format(n=2), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert "Hello @ 2." in _load(site)[0][POST].html


def test_an_edit_deletion_and_new_file_change_only_their_rows(site: Path) -> None:
    _write(site, TEXT.format(n=1))
    _load(site)
    _write(site, TEXT.format(n=22))
    other = site / "content/posts/2026-01-21-other.md"
    other.write_text(TEXT.format(n=3).replace("Cached", "Other"), encoding="utf-8")
    posts, renderer = _load(site)
    assert "Hello @ 22." in posts[POST].html
    assert renderer.rendered == 2
    other.unlink()
    posts, _ = _load(site)
    assert "content/posts/2026-01-21-other.md" not in posts
    with sqlite3.connect(config_mod.load(site).cache_dir / "parsed.sqlite3") as con:
        rels = {r for (r,) in con.execute("SELECT rel FROM texts")}
        digests = [d for (d,) in con.execute("SELECT digest FROM texts WHERE rel = ?", (POST,))]
    assert "content/posts/2026-01-21-other.md" not in rels
    assert digests == [posts[POST].digest]  # the old text is gone with its version


@pytest.mark.parametrize("junk", [b"", b"not a database at all" * 100, b"SQLite format 3\0junk"])
def test_a_broken_cache_file_is_rebuilt_not_an_error(site: Path, junk: bytes) -> None:
    _write(site, TEXT.format(n=1))
    first, _ = _load(site)
    parse_cache.forget_resident()  # the process that wrote it has ended
    path = config_mod.load(site).cache_dir / "parsed.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(junk)
    again, _ = _load(site)
    assert again == first
    assert not isinstance(again[POST], parse_cache.StoredPost)  # parsed anew
    cached, _ = _load(site)
    assert isinstance(cached[POST], parse_cache.StoredPost)  # and cached again


def test_another_key_empties_the_cache(site: Path) -> None:
    _write(site, TEXT.format(n=1))
    _load(site)
    path = config_mod.load(site).cache_dir / "parsed.sqlite3"
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = 'an older parser' WHERE name = 'key'")
    posts, _ = _load(site)
    assert not isinstance(posts[POST], parse_cache.StoredPost)


def test_a_stored_post_reads_its_text_on_first_use_and_pickles_as_a_post(site: Path) -> None:
    _write(site, TEXT.format(n=1))
    parsed, _ = _load(site)
    posts, _ = _load(site)
    post = posts[POST]
    assert "html" not in vars(post) and "body" not in vars(post)
    assert parse_cache.might_mention(post)  # from the row, the HTML still unread
    assert "html" not in vars(post)
    assert post.html == parsed[POST].html and "body" in vars(post)
    plain = pickle.loads(pickle.dumps(post))
    assert type(plain) is Post and plain == parsed[POST]


def test_a_resident_process_keeps_rows_and_items_until_another_writer(site: Path) -> None:
    """``serve --watch`` keeps the rows and the posts made from them between builds;
    a write by another process (another connection) makes it read the rows again."""
    _write(site, TEXT.format(n=1))
    _load(site)
    first, _ = _load(site, resident=True)
    again, _ = _load(site, resident=True)
    assert again[POST] is first[POST]  # not even unpickled again
    path = config_mod.load(site).cache_dir / "parsed.sqlite3"
    with sqlite3.connect(path) as con:  # another writer: same rows, a new data_version
        con.execute("INSERT OR REPLACE INTO meta VALUES ('another', 'writer')")
    after, _ = _load(site, resident=True)
    assert after[POST] is not first[POST] and after[POST] == first[POST]
    _write(site, TEXT.format(n=4))  # an edit: parsed, then kept as parsed
    edited, renderer = _load(site, resident=True)
    assert renderer.rendered == 1 and "Hello @ 4." in edited[POST].html
    kept, renderer = _load(site, resident=True)
    assert kept[POST] is edited[POST] and renderer.rendered == 0


def test_a_replaced_cache_file_is_not_served_from_memory(site: Path) -> None:
    _write(site, TEXT.format(n=1))
    first, _ = _load(site, resident=True)
    path = config_mod.load(site).cache_dir / "parsed.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    again, _ = _load(site, resident=True)
    assert again[POST] is not first[POST] and again[POST] == first[POST]  # parsed anew
    with sqlite3.connect(path) as con:  # into a new file
        assert (POST,) in con.execute("SELECT rel FROM items").fetchall()


def test_going_through_every_cached_post_reads_the_texts_in_one_query(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parse_cache._Texts, "BULK", 3)
    for n in range(8):
        path = site / f"content/posts/2026-02-0{n + 1}-bulk-{n}.md"
        path.write_text(TEXT.format(n=n).replace("Cached", f"Bulk {n}"), encoding="utf-8")
        os.utime(path, (time.time() - 10, time.time() - 10))
    parsed, _ = _load(site)
    cached, _ = _load(site)
    assert all(isinstance(p, parse_cache.StoredPost) for p in cached.values())
    assert {rel: p.html for rel, p in cached.items()} == {rel: p.html for rel, p in parsed.items()}
    assert [p.body for p in cached.values()] == [p.body for p in parsed.values()]


@pytest.mark.parametrize(
    "front",
    [
        "date: 2026-01-20T10:00:00+05:30\nupdated: 2026-01-21T08:00:00.123456Z\n",
        "date: 2026-01-20\nimages:\n  - url: static/a.png\n    alt: An image\n",
        "date: 2026-01-20T10:00:00Z\nsummary: Short\ncontent_warning: cw\nin_reply_to: https://x.example/1\n"
        "original_url: https://old.example/p\npinned: true\nquote_of: https://q.example/2\n",
    ],
)
def test_a_row_gives_back_the_post_as_parsed(site: Path, front: str) -> None:
    _write(site, f"---\ntitle: Row\n{front}tags: [a, b]\n---\nBody @ x.\n")
    parsed, _ = _load(site)
    cached, _ = _load(site)
    assert isinstance(cached[POST], parse_cache.StoredPost)
    assert cached[POST] == parsed[POST]
    assert cached[POST].date.utcoffset() == parsed[POST].date.utcoffset()


def test_the_whole_file_cache_it_replaced_is_removed(site: Path) -> None:
    old = config_mod.load(site).cache_dir / "parsed.pickle"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"an old cache")
    _load(site)
    assert not old.exists()
