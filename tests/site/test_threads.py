"""Whole threads: ``context`` (FEP-7888) on every post object and paged ``replies`` and
``context`` collections listing the replies shown under the post by their original ids.
Facts and sources are in ``bridge/site/threads.py``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import SiteConfig
from bridge.config import load as load_config
from bridge.daemon.collections import empty_collection
from bridge.site import threads
from bridge.site.build import BuildResult
from bridge.site.comments import CommentStore
from bridge.site.posts import Comment, CommentAuthor
from tests.conftest import Built

Build = Callable[..., BuildResult]
BASE = "https://blog.example/ap/posts"
FRIEND_REPLY = "https://social.example/users/friend/statuses/1"


def walk_pages(read: Callable[[str], Any], collection_url: str) -> Iterator[dict[str, Any]]:
    """Follow ``first`` and ``next`` as Mastodon's FetchRepliesService does."""
    collection = read(collection_url)
    url = collection.get("first")
    seen = 0
    while url:
        page = read(url)
        assert page["partOf"] == collection_url
        yield page
        url = page.get("next")
        seen += 1
        assert seen < 100, "pages loop"


def reader(built_out: Path, config: SiteConfig) -> Callable[[str], Any]:
    """What the daemon serves: the output's file, else an empty collection of a live post
    (``bridge.daemon.collections``; the build writes collections that have items)."""

    def read(url: str) -> Any:
        assert url.startswith("https://blog.example/")
        rel = url.removeprefix("https://blog.example/")
        if (built_out / rel).is_file():
            return json.loads((built_out / rel).read_text())
        assert config.output_dir.resolve() == built_out.resolve()
        doc = empty_collection(config, rel)
        assert doc is not None, f"{url} is not served"
        return doc

    return read


def test_every_post_object_names_its_context(built: Built) -> None:
    for slug in ("first-article", "quick-note", "spoilers", "a-reply"):
        obj = built.json(f"ap/posts/{slug}.json")
        assert obj["context"] == f"{BASE}/{slug}/context.json"
        assert obj["replies"] == f"{BASE}/{slug}/replies.json"


def test_context_lists_the_post_then_its_replies(built: Built) -> None:
    read = reader(built.out, built.config)
    url = f"{BASE}/first-article/context.json"
    collection = read(url)
    assert collection["type"] == "OrderedCollection"
    assert collection["attributedTo"] == built.config.actor_id
    assert collection["totalItems"] == 2
    items = [i for page in walk_pages(read, url) for i in page["orderedItems"]]
    assert items == [f"{BASE}/first-article.json", FRIEND_REPLY]


def test_replies_list_the_original_remote_ids(built: Built) -> None:
    read = reader(built.out, built.config)
    url = f"{BASE}/first-article/replies.json"
    assert read(url)["totalItems"] == 1
    assert [i for p in walk_pages(read, url) for i in p["orderedItems"]] == [FRIEND_REPLY]
    # A post without replies still has a first page, empty.
    empty = f"{BASE}/quick-note/replies.json"
    assert [p["orderedItems"] for p in walk_pages(read, empty)] == [[]]


def reply(n: int, **extra: Any) -> Comment:
    values: dict[str, Any] = {
        "id": f"{n:020x}",
        "type": "reply",
        "protocol": "activitypub",
        "source": f"https://far.example/@p{n}/{n}",
        "target": "https://blog.example/posts/quick-note/",
        "author": CommentAuthor(name=f"P{n}", url=f"https://far.example/@p{n}"),
        "content": f"<p>Reply {n}</p>",
        "published": dt.datetime(2026, 2, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n),
        "object_id": f"https://far.example/notes/{n}",
    }
    values.update(extra)
    return Comment(**values)


def test_pages_follow_next_through_every_shown_reply(
    site: Path, build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threads, "PAGE_SIZE", 2)
    store = CommentStore(site / "content")
    for n in range(1, 6):
        # Nested replies are listed too; pending ones and likes are not.
        parent = "https://far.example/notes/1" if n == 3 else ""
        store.write("quick-note", reply(n, in_reply_to=parent))
    store.write("quick-note", reply(6, status="pending"))
    store.write("quick-note", reply(7, type="like", content=""))
    out = build_site(site).out_dir
    read = reader(out, load_config(site))
    url = f"{BASE}/quick-note/replies.json"
    pages = list(walk_pages(read, url))
    assert [len(p["orderedItems"]) for p in pages] == [2, 2, 1]
    assert [p.get("prev") for p in pages][1:] == [pages[0]["id"], pages[1]["id"]]
    items = [i for p in pages for i in p["orderedItems"]]
    assert items == [f"https://far.example/notes/{n}" for n in range(1, 6)]
    assert read(url)["last"] == pages[-1]["id"]
    context = [
        i for p in walk_pages(read, f"{BASE}/quick-note/context.json") for i in p["orderedItems"]
    ]
    assert context == [f"{BASE}/quick-note.json", *items]


def _burst_reply(n: int) -> Comment:
    """Replies of one viral second: the same ``published``, file names in no order."""
    return Comment(
        id=hashlib.sha256(str(n).encode()).hexdigest()[:20],
        type="reply",
        protocol="activitypub",
        source=f"https://r.example/notes/{n}",
        target="https://blog.example/posts/first-article/",
        author=CommentAuthor(name=f"R{n}", url=f"https://r.example/users/{n}"),
        content=f"<p>{n}</p>",
        published=dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC),
        object_id=f"https://r.example/notes/{n}",
    )


def test_a_stored_comment_keeps_when_it_first_arrived(site: Path) -> None:
    store = CommentStore(load_config(site).content_dir)
    store.write("first-article", _burst_reply(1))
    found = store.get(_burst_reply(1).id)
    assert found is not None and found[1].received is not None
    first = found[1].received
    store.write("first-article", _burst_reply(1))  # a redelivery, or an edit
    again = store.get(_burst_reply(1).id)
    assert again is not None and again[1].received == first


def test_a_burst_of_same_second_replies_adds_to_the_last_page_only(site: Path) -> None:
    """Replies of one second are listed by arrival: a new one changes the collection and
    its last page, not the pages before it (a peer that paged through keeps them)."""
    cfg = load_config(site)
    store = CommentStore(cfg.content_dir)
    for n in range(2 * threads.PAGE_SIZE + 5):
        store.write("first-article", _burst_reply(n))
    before = dict(threads.documents(cfg, "first-article", store.by_post()["first-article"]))
    store.write("first-article", _burst_reply(999))
    after = dict(threads.documents(cfg, "first-article", store.by_post()["first-article"]))
    changed = sorted(rel for rel in after if after[rel] != before.get(rel))
    assert changed == [
        "ap/posts/first-article/context.json",
        "ap/posts/first-article/context/page-3.json",
        "ap/posts/first-article/replies.json",
        "ap/posts/first-article/replies/page-3.json",
    ]
    listed = [
        item
        for n in (1, 2, 3)
        for item in after[f"ap/posts/first-article/replies/page-{n}.json"]["orderedItems"]
        if item.startswith("https://r.example/")
    ]
    order = [*range(2 * threads.PAGE_SIZE + 5), 999]
    assert listed == [f"https://r.example/notes/{n}" for n in order]  # by arrival
