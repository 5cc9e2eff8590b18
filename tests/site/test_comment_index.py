"""Finding comments by id through the index (``bridge.site.comment_index``): this process's
writes and deletes at once, another process's files within ``RECHECK`` seconds."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from bridge.site import comment_index
from bridge.site.comments import CommentStore, to_json
from bridge.site.posts import Comment, CommentAuthor


def comment(n: int) -> Comment:
    return Comment(
        id=f"{n:020x}",
        type="reply",
        protocol="activitypub",
        source=f"https://remote.example/notes/{n}",
        target="https://blog.example/posts/hello/",
        author=CommentAuthor(name="Alice", url="https://remote.example/users/alice"),
        content=f"<p>reply {n}</p>",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def written_elsewhere(content: Path, slug: str, c: Comment) -> None:
    """A file another process (a CLI command, a git pull) adds."""
    folder = content / "comments" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{c.id}.json").write_text(json.dumps(to_json(c)), encoding="utf-8")


def test_writes_and_deletes_of_this_process_are_found_at_once(tmp_path: Path) -> None:
    store = CommentStore(tmp_path)
    assert store.get(comment(1).id) is None
    store.write("hello", comment(1))
    store.write("other", comment(2))
    assert store.get(comment(1).id) == ("hello", comment(1))
    assert CommentStore(tmp_path).get(comment(2).id) == ("other", comment(2))  # shared index
    assert store.delete(comment(1).id)
    assert store.get(comment(1).id) is None
    assert not store.delete(comment(1).id)


def test_a_lookup_that_misses_does_not_list_the_folders_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CommentStore(tmp_path)
    for n in range(20):
        store.write(f"post-{n}", comment(n))
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(str(p)) or real(p))
    for n in range(100, 400):
        assert store.get(comment(n).id) is None
    assert len(listed) <= 20  # at most one rescan of changed folders, not 300 scans


def test_a_file_added_by_another_process_is_found_after_the_recheck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(comment_index.time, "monotonic", lambda: clock[0])
    store = CommentStore(tmp_path)
    store.write("hello", comment(1))
    assert store.get(comment(5).id) is None  # the first lookup lists the folders
    written_elsewhere(tmp_path, "hello", comment(2))
    written_elsewhere(tmp_path, "new-post", comment(3))
    clock[0] += comment_index.RECHECK
    assert store.get(comment(2).id) == ("hello", comment(2))
    assert store.get(comment(3).id) == ("new-post", comment(3))


def test_a_file_deleted_by_another_process_is_not_found(tmp_path: Path) -> None:
    store = CommentStore(tmp_path)
    store.write("hello", comment(1))
    (tmp_path / "comments" / "hello" / f"{comment(1).id}.json").unlink()
    assert store.get(comment(1).id) is None
    assert not store.delete(comment(1).id)


def test_a_deferring_store_syncs_a_batch_at_once(tmp_path: Path) -> None:
    store = CommentStore(tmp_path).deferring()
    paths = [store.write("hello", comment(n)) for n in range(3)]
    assert store.take_unsynced() == paths
    assert store.take_unsynced() == []
    store.sync(paths)  # syncfs on Linux; an fsync per file and folder elsewhere
    assert CommentStore(tmp_path).get(comment(2).id) == ("hello", comment(2))
    assert CommentStore(tmp_path).take_unsynced() == []  # an ordinary store syncs each write


def test_ids_that_are_not_ours_are_never_looked_up(tmp_path: Path) -> None:
    assert CommentStore(tmp_path).get("../../etc/passwd") is None
