"""Reply threads a stranger shapes: cycles, self-replies, diamonds and very deep chains.

A sender controls ``url`` and ``inReplyTo`` of its own objects, so it can make comments
refer to each other.  Threading (``bridge.site.threads.thread``) must stay a tree: each
comment shown once, nesting capped, and linear work, whatever the references say.  The
example that once made every rebuild grow without end: Note{url: S, inReplyTo: POST}, then
three Notes{url: S, inReplyTo: S}.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pytest

from bridge.site import build as site_mod
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor
from bridge.site.threads import MAX_THREAD_DEPTH, Thread, thread
from tests.security.conftest import ALICE, POST_SLUG, InboxHarness, create, note

pytestmark = [pytest.mark.anyio, pytest.mark.category("threads")]

T0 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def reply(
    n: int, *, url: str = "", obj: str = "", to: str = "", minutes: int | None = None
) -> Comment:
    return Comment(
        id=comment_id("activitypub", f"n{n}"),
        type="reply",
        protocol="activitypub",
        source=url or f"https://remote.example/@a/{n}",
        target="https://blog.example/posts/first-article/",
        author=CommentAuthor(name=f"A{n}", url="https://remote.example/@a"),
        content=f"<p>{n}</p>",
        published=T0 + dt.timedelta(minutes=n if minutes is None else minutes),
        updated=None,
        status="approved",
        in_reply_to=to,
        object_id=obj or f"https://remote.example/notes/{n}",
    )


def walk(forest: tuple[Thread, ...]) -> tuple[Counter[str], int]:
    """(how often each comment id is shown, the deepest nesting level), without recursion."""
    seen: Counter[str] = Counter()
    deepest = 0
    stack = [(node, 1) for node in forest]
    while stack:
        node, depth = stack.pop()
        seen[node.comment.id] += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children)
    return seen, deepest


def assert_tree(comments: list[Comment]) -> tuple[tuple[Thread, ...], int]:
    forest, _ = thread(comments)
    seen, deepest = walk(forest)
    assert seen == Counter(c.id for c in comments), "every reply shown exactly once"
    assert deepest <= MAX_THREAD_DEPTH
    return forest, deepest


def parent_of(forest: tuple[Thread, ...], cid: str) -> str | None:
    stack: list[tuple[Thread, str | None]] = [(node, None) for node in forest]
    while stack:
        node, parent = stack.pop()
        if node.comment.id == cid:
            return parent
        stack.extend((child, node.comment.id) for child in node.children)
    raise AssertionError(f"{cid} not shown")


def test_two_comments_replying_to_each_other() -> None:
    a = reply(1, to="https://remote.example/notes/2")
    b = reply(2, to="https://remote.example/notes/1")
    forest, _ = assert_tree([a, b])
    assert [t.comment.id for t in forest] == [a.id]  # the loop is cut at its earliest comment
    assert parent_of(forest, b.id) == a.id


def test_a_three_comment_loop_hanging_a_branch() -> None:
    a = reply(1, to="https://remote.example/notes/3")
    b = reply(2, to="https://remote.example/notes/1")
    c = reply(3, to="https://remote.example/notes/2")
    d = reply(0, to="https://remote.example/notes/2")  # earliest, hangs off the loop
    forest, _ = assert_tree([a, b, c, d])
    assert [t.comment.id for t in forest] == [a.id]
    assert parent_of(forest, d.id) == b.id


@pytest.mark.parametrize("field", ["object_id", "url"])
def test_self_reply_is_top_level(field: str) -> None:
    own = "https://remote.example/notes/1" if field == "object_id" else "https://x.example/s"
    c = reply(1, url="https://x.example/s", to=own)
    forest, _ = assert_tree([c])
    assert [t.comment.id for t in forest] == [c.id]


def test_issue_example_shared_url_never_nests_under_every_copy() -> None:
    url = "https://evil.example/s"
    first = reply(1, url=url)  # replies to the post
    copies = [reply(n, url=url, to=url) for n in (2, 3, 4)]
    forest, deepest = assert_tree([first, *copies])
    assert deepest == 2
    assert all(parent_of(forest, c.id) == first.id for c in copies)


def test_url_copying_another_comments_id_does_not_steal_its_replies() -> None:
    genuine = reply(2)
    impostor = reply(1, url=genuine.object_id)  # earlier, and its url is genuine's id
    child = reply(3, to=genuine.object_id)
    forest, _ = assert_tree([genuine, impostor, child])
    assert parent_of(forest, child.id) == genuine.id  # an object id outranks a url


def test_diamond_of_many_shared_urls_stays_linear() -> None:
    url = "https://evil.example/s"
    comments = [reply(1, url=url)] + [reply(n, url=url, to=url) for n in range(2, 400)]
    started = time.perf_counter()
    forest, deepest = assert_tree(comments)
    assert time.perf_counter() - started < 2
    assert deepest == 2 and len(forest) == 1


def test_duplicate_ids_are_shown_once() -> None:
    c = reply(1)
    later = dataclasses.replace(c, published=T0 + dt.timedelta(days=1), content="<p>x</p>")
    forest, _ = thread([c, later])
    assert [t.comment for t in forest] == [c]


@pytest.mark.parametrize("shape", ["chain", "loop"])
def test_ten_thousand_deep(shape: str) -> None:
    n = 10_000
    comments = [reply(0)] + [
        reply(i, to=f"https://remote.example/notes/{i - 1}") for i in range(1, n)
    ]
    if shape == "loop":
        comments[0] = reply(0, to=f"https://remote.example/notes/{n - 1}")
    started = time.perf_counter()
    forest, deepest = assert_tree(comments)
    assert time.perf_counter() - started < 5
    assert deepest == MAX_THREAD_DEPTH  # deeper replies are shown, flattened at the cap
    assert len(forest) == 1 and forest[0].comment.id == comments[0].id


def test_deep_chain_builds_a_bounded_page(site: Path) -> None:
    from bridge import config as config_mod

    config = config_mod.load(site)
    store = CommentStore(config.content_dir)
    n = 300
    for i in range(n):
        store.write(POST_SLUG, reply(i, to=f"https://remote.example/notes/{i - 1}" if i else ""))
    started = time.perf_counter()
    site_mod.build(config)
    elapsed = time.perf_counter() - started
    page = (config.output_dir / "posts" / POST_SLUG / "index.html").read_text(encoding="utf-8")
    for i in (0, 1, n // 2, n - 1):
        assert page.count(f'id="c-{comment_id("activitypub", f"n{i}")}"') == 1
    assert page.count('<ol class="replies">') <= MAX_THREAD_DEPTH
    assert elapsed < 60


async def test_issue_example_through_the_inbox(inbox: InboxHarness) -> None:
    url = "https://remote.example/@alice/s"
    first = note(ALICE + "/notes/0", in_reply_to=inbox.post_url, url=url)
    activities = [create(ALICE, first, 0)]
    for n in (1, 2, 3):
        activities.append(create(ALICE, note(ALICE + f"/notes/{n}", in_reply_to=url, url=url), n))
    for activity in activities:
        assert (await inbox.post(activity)).status_code == 202
    await inbox.process()
    assert len(inbox.comments()) == 4
    site_mod.build(inbox.config)
    page = (inbox.config.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")
    for cid in inbox.comments():
        assert page.count(f'id="c-{cid}"') == 1
    for _ in range(3):  # rebuilding again and again does not grow the page
        site_mod.build(inbox.config)
    again = (inbox.config.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")
    assert len(again) == len(page)
