"""The daemon's rebuild schedule: a reply's page at once, likes coalesced
(``bridge.daemon.rebuild.Rebuilder``), on a real build of the test site."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.daemon.rebuild import Rebuilder
from bridge.site import build as site_mod
from bridge.site.build import BuildResult
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor

pytestmark = pytest.mark.anyio

ALICE = CommentAuthor(name="Alice", url="https://a.example/users/alice")


def reply(slug: str, text: str) -> Comment:
    return Comment(
        id=comment_id("activitypub", text),
        type="reply",
        protocol="activitypub",
        source=f"https://a.example/notes/{text}",
        target=f"https://blog.example/posts/{slug}/",
        author=ALICE,
        content=f"<p>{text}</p>",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )


def like(slug: str, n: int) -> Comment:
    author = CommentAuthor(name=f"Liker {n}", url=f"https://l{n}.example/users/l")
    return Comment(
        id=comment_id("activitypub", f"like {n} {slug}"),
        type="like",
        protocol="activitypub",
        source=f"https://l{n}.example/likes/{n}",
        target=f"https://blog.example/posts/{slug}/",
        author=author,
        content="",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )


def page(cfg: config_mod.SiteConfig, slug: str) -> str:
    return (cfg.output_dir / "posts" / slug / "index.html").read_text(encoding="utf-8")


async def wait_for(check: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def record_builds(rebuilder: Rebuilder) -> list[frozenset[str] | None]:
    """The ``refresh`` argument of each build ``rebuilder`` runs from now on (None: full)."""
    builds: list[frozenset[str] | None] = []
    real = rebuilder._build

    def recording(refresh: frozenset[str] | None) -> tuple[BuildResult, float]:
        builds.append(refresh)
        return real(refresh)

    rebuilder._build = recording  # type: ignore[method-assign]
    return builds


async def test_a_reply_is_built_at_once_while_likes_wait_for_the_full_build(
    site: Path,
) -> None:
    cfg = config_mod.load(site)
    site_mod.build(cfg)
    store = CommentStore(cfg.content_dir)
    rebuilder = Rebuilder(cfg, delay=0.01, full_every=600.0)
    builds = record_builds(rebuilder)
    stop = asyncio.Event()
    task = asyncio.create_task(rebuilder.run(stop))
    try:
        store.write("spoilers", like("spoilers", 1))
        rebuilder.mark_dirty("spoilers")
        await wait_for(lambda: builds == [None] and not rebuilder.event.is_set())
        await wait_for(lambda: "Liker 1" in page(cfg, "spoilers"))  # the first build is full

        store.write("spoilers", like("spoilers", 2))
        rebuilder.mark_dirty("spoilers")
        store.write("quick-note", reply("quick-note", "first-reply-marker"))
        rebuilder.mark_dirty("quick-note")
        await wait_for(lambda: "first-reply-marker" in page(cfg, "quick-note"), 5.0)
        assert builds[1] == {"quick-note"}  # only the reply's post was read again
        assert "Liker 2" not in page(cfg, "spoilers")  # the like waits for a full build
        assert rebuilder.dirty == {"spoilers"}

        rebuilder.full_every = 0.0  # the coalescing period is over
        rebuilder.event.set()
        await wait_for(lambda: "Liker 2" in page(cfg, "spoilers"))
        assert builds[-1] is None and "first-reply-marker" in page(cfg, "quick-note")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_likes_alone_are_coalesced_into_one_full_build(site: Path) -> None:
    cfg = config_mod.load(site)
    site_mod.build(cfg)
    store = CommentStore(cfg.content_dir)
    rebuilder = Rebuilder(cfg, delay=0.3)
    builds = record_builds(rebuilder)
    stop = asyncio.Event()
    task = asyncio.create_task(rebuilder.run(stop))
    try:
        for n in range(20):
            store.write("spoilers", like("spoilers", n))
            rebuilder.mark_dirty("spoilers")
            await asyncio.sleep(0.005)
        await wait_for(lambda: "Liker 19" in page(cfg, "spoilers"))
        assert builds == [None]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_the_rebuild_event_says_how_much_of_the_build_was_cpu(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A build slower than its CPU time waited for a core or the disk: the event says both."""
    cfg = config_mod.load(site)
    site_mod.build(cfg)
    rebuilder = Rebuilder(cfg, delay=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(rebuilder.run(stop))
    caplog.set_level("INFO", logger="indiebridge.events")
    try:
        CommentStore(cfg.content_dir).write("spoilers", like("spoilers", 1))
        rebuilder.mark_dirty("spoilers")
        await wait_for(lambda: [r for r in caplog.records if getattr(r, "event", "") == "rebuild"])
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    record = next(r for r in caplog.records if getattr(r, "event", "") == "rebuild")
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["posts"] == ["spoilers"] and fields["pages"] >= 1
    assert 0 < fields["cpu_seconds"] <= fields["seconds"] + 0.01
