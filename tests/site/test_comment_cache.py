"""Parsed comments kept between reads, and a build refreshing only some posts
(``bridge.site.comment_cache``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.site import comment_cache
from bridge.site.comments import CommentStore, from_json
from bridge.site.posts import Comment, CommentAuthor


def comment(n: int, kind: str = "reply") -> Comment:
    return Comment(
        id=f"{n:020x}",
        type=kind,
        protocol="activitypub",
        source=f"https://a.example/notes/{n}",
        target="https://blog.example/posts/a/",
        author=CommentAuthor(name="Alice", url="https://a.example/users/alice"),
        content=f"<p>reply {n}</p>" if kind == "reply" else "",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


@pytest.fixture
def store(tmp_path: Path) -> CommentStore:
    return CommentStore(tmp_path / "content")


def test_a_file_is_parsed_again_only_when_it_changed(
    store: CommentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        store.write("a", comment(n))
    assert [c.id for c in store.by_post()["a"]] == [comment(n).id for n in range(3)]
    parsed: list[str] = []

    def counting(data: dict[str, Any]) -> Comment:
        parsed.append(data["id"])
        return from_json(data)

    monkeypatch.setattr(store.cache, "parse", counting)
    changed = dataclasses.replace(comment(1), content="<p>edited</p>")
    store.write("a", changed)
    store.write("a", comment(3))
    again = store.by_post()["a"]
    assert sorted(parsed) == sorted([changed.id, comment(3).id])
    assert changed in again and comment(3) in again and len(again) == 4
    store.delete(comment(0).id)
    assert comment(0) not in store.by_post()["a"]


def test_the_digest_is_the_hash_of_each_file_name_and_sha256(store: CommentStore) -> None:
    import hashlib

    store.write("a", comment(1))
    store.write("a", comment(2))
    h = hashlib.sha256()
    for path in sorted((store.root / "a").glob("*.json")):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    store.write("b", comment(3))
    store.delete(comment(3).id)  # its folder stays, empty
    assert store.for_build()[1] == {"a": h.hexdigest()}  # a post without comments: none


def test_the_cache_keeps_no_file_bytes_and_a_changed_file_changes_the_digest(
    store: CommentStore,
) -> None:
    store.write("a", comment(1))
    before = store.for_build()[1]["a"]
    kept = store.cache.files[str(store.root / "a")]
    assert all(len(key) == 24 + 32 for key, _ in kept.values())  # stamp + sha256, no bytes
    assert all(name is parsed.id for name, (_, parsed) in kept.items() if parsed)  # one copy
    store.write("a", dataclasses.replace(comment(1), content="<p>edited</p>"))
    comments, digests = store.for_build()
    assert digests["a"] != before
    assert comments["a"][0].content == "<p>edited</p>"


def test_repeated_strings_are_shared_between_parsed_comments(store: CommentStore) -> None:
    store.write("a", dataclasses.replace(comment(1), object_id=comment(1).source))
    store.write("b", comment(2))
    one, two = store.by_post()["a"][0], store.by_post()["b"][0]
    assert one.target is two.target and one.author.name is two.author.name
    assert one.published is two.published and one.object_id is one.source
    assert not hasattr(one, "__dict__")  # slotted


def test_a_hand_broken_file_is_skipped(store: CommentStore) -> None:
    store.write("a", comment(1))
    (store.root / "a" / f"{comment(2).id}.json").write_text("{not json", encoding="utf-8")
    assert store.by_post()["a"] == [comment(1)]


def test_a_refresh_reads_only_its_posts_and_holds_the_others_as_last_built(
    store: CommentStore,
) -> None:
    store.write("a", comment(1))
    store.write("b", comment(2, "like"))
    store.by_post()  # what the last build read
    old_b = store.for_build()[1]["b"]
    store.write("a", comment(3))
    store.write("b", comment(4, "like"))
    with store.refreshing({"a"}):
        seen, digests = store.for_build()
        held_digest = digests["b"]
        elsewhere: dict[str, list[Comment]] = {}
        reader = threading.Thread(target=lambda: elsewhere.update(store.by_post()))
        reader.start()
        reader.join()
        current_b = [c for s, c in store.iter_all() if s == "b"]  # handlers read current
    assert len(seen["a"]) == 2 and seen["b"] == [comment(2, "like")]
    assert held_digest == old_b
    assert len(elsewhere["b"]) == 2  # another thread (the inbox's handlers) reads current
    assert len(current_b) == 2
    assert len(store.by_post()["b"]) == 2  # outside the refresh: current again


def test_replies_are_noted_urgent_and_likes_are_not(store: CommentStore) -> None:
    store.write("a", comment(1, "like"))
    store.write("b", comment(2, "repost"))
    assert store.cache.urgent_slugs() == frozenset()
    store.write("c", comment(3))
    assert store.cache.urgent_slugs() == {"c"}
    store.by_post()  # a build read it
    assert store.cache.urgent_slugs() == frozenset()
    store.delete(comment(3).id)
    assert store.cache.urgent_slugs() == {"c"}


def test_one_cache_per_comments_folder(tmp_path: Path) -> None:
    one = CommentStore(tmp_path / "content")
    two = CommentStore(tmp_path / "content")
    other = CommentStore(tmp_path / "elsewhere")
    assert one.cache is two.cache is comment_cache.cache_for(one.root, from_json)
    assert other.cache is not one.cache


def test_a_warm_cache_and_a_fresh_process_give_the_same_digest(store: CommentStore) -> None:
    """The daemon's long-lived cache and a command's first read must agree, or a page is
    rendered on every build (or, worse, kept when its comments changed)."""
    for n in range(4):
        store.write("a", comment(n))
    store.for_build()  # warm
    store.write("a", dataclasses.replace(comment(2), content="<p>edited</p>"))
    store.delete(comment(0).id)
    store.write("a", comment(9))
    warm = store.for_build()[1]["a"]
    fresh = comment_cache.CommentCache(from_json).folder(store.root / "a").digest
    assert warm == fresh
