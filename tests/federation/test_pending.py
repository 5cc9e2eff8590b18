"""``pending``: whether a publish has anything to do, and that it agrees with ``outbox.publish``.

Each change a publish acts on must make ``publish_due`` true (so the full publish runs
and sends what it always sent), and after that publish it must be false again; "false"
must mean that ``outbox.publish`` would queue and record nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.federation import delivery, outbox, pending
from tests.federation.test_outbox import NOON, Site, by_type

pytestmark = pytest.mark.anyio


def due(blog: Site) -> bool:
    return pending.publish_due(blog.ctx.config, blog.ctx.db, blog.build())


async def settled(blog: Site) -> None:
    await blog.publish(moment=NOON)
    assert not due(blog)


@pytest.fixture
async def blog(make_site: Callable[..., Path]) -> AsyncIterator[Site]:
    site = Site(make_site())
    yield site
    await site.ctx.fetcher.aclose()


def _front(blog: Site, line: str) -> None:
    path = blog.posts_dir / "steady.md"
    path.write_text(path.read_text("utf-8").replace("---\n", f"---\n{line}\n", 1), "utf-8")


def _touch_same_bytes(blog: Site) -> None:
    blog.build()
    path = blog.ctx.config.output_dir / outbox.live_object_path(blog.ctx, "steady")
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # a new inode, the same content


def _new(blog: Site) -> None:
    blog.write("fresh", "Brand new.")


def _edit(blog: Site) -> None:
    blog.write("steady", "Other words.")


def _delete(blog: Site) -> None:
    blog.remove("steady")


def _draft(blog: Site) -> None:
    _front(blog, "draft: true")


def _pin(blog: Site) -> None:
    _front(blog, "pinned: true")


def _mention(blog: Site) -> None:
    blog.write("steady", "Written once, now to @alice@peer.example.")


def _profile(blog: Site) -> None:
    toml = blog.folder / "site.toml"
    toml.write_text(toml.read_text("utf-8").replace("Tess Tester", "Tess Renamed"), "utf-8")
    blog.ctx.config = config_mod.load(blog.folder)


def _forget_first_publish(blog: Site) -> None:
    blog.ctx.db.con.execute("DELETE FROM meta WHERE key = 'federate_since'")


CHANGES: dict[str, Callable[[Site], None]] = {
    "new post": _new,
    "edited post": _edit,
    "deleted post": _delete,
    "post turned draft": _draft,
    "object file touched": _touch_same_bytes,
    "pinned post": _pin,
    "mention added": _mention,
    "profile": _profile,
    "first publish": _forget_first_publish,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_every_change_makes_a_publish_due_and_the_publish_settles_it(
    blog: Site, change: str
) -> None:
    blog.write("steady", "Written once.")
    await settled(blog)
    CHANGES[change](blog)
    assert due(blog)
    await settled(blog)


async def test_nothing_due_means_the_publish_sends_and_records_nothing(blog: Site) -> None:
    blog.write("steady", "Written once.")
    await settled(blog)
    before = blog.ctx.db.query("SELECT * FROM published")
    queued = blog.queued()
    report = await blog.publish(moment=NOON)
    assert report.summary().startswith("Nothing to send")
    assert report.planned == [] and report.queued == 0
    assert blog.queued() == queued
    assert [dict(r) for r in blog.ctx.db.query("SELECT * FROM published")] == [
        dict(r) for r in before
    ]


async def test_touched_but_unchanged_object_sends_nothing(blog: Site) -> None:
    blog.write("steady", "Written once.")
    await settled(blog)
    queued = blog.queued()
    _touch_same_bytes(blog)
    assert due(blog)  # its stamp changed: the publish digests it ...
    report = await blog.publish(moment=NOON)
    assert not (report.created or report.updated or report.deleted)
    assert blog.queued() == queued  # ... finds the same object, sends nothing
    assert not due(blog)  # and keeps the new stamp


async def test_an_edit_sends_exactly_one_update(blog: Site) -> None:
    blog.write("steady", "Written once.")
    blog.write("other", "Left alone.")
    await settled(blog)
    before = len(blog.queued())
    blog.write("steady", "Edited words.")
    assert due(blog)
    report = await blog.publish(moment=NOON)
    assert report.updated == ["steady"] and not (report.created or report.deleted)
    sent = blog.queued()[before:]
    assert [a["type"] for a in sent] == ["Update"]
    assert by_type(sent, "Update")[0]["object"]["content"].count("Edited words.") == 1


async def test_lookups_due_follow_the_caches(blog: Site) -> None:
    config, db = blog.ctx.config, blog.ctx.db
    blog.write("plain", "No handles here.")
    assert not pending.lookups_due(config, db, blog.build())
    blog.write("own", f"Me: {config.handle}.")
    assert not pending.lookups_due(config, db, blog.build())  # the blog's own handle
    blog.write("hello", "Hello @alice@peer.example!")
    posts = blog.build()  # the handle as plain text, as before its first lookup
    assert pending.lookups_due(config, db, posts)  # never looked up
    now = time.time()
    for expires, wanted in ((now + 3600, False), (now - 1, True)):
        db.con.execute(
            "INSERT OR REPLACE INTO mention_cache(handle, actor_id, profile_url, inbox, "
            "fetched, expires) VALUES ('@alice@peer.example', 'https://peer.example/u/a', "
            "'https://peer.example/@a', 'https://peer.example/inbox', ?, ?)",
            (now, expires),
        )
        assert pending.lookups_due(config, db, posts) is wanted


async def test_a_quoted_post_is_due_until_cached(blog: Site) -> None:
    config, db = blog.ctx.config, blog.ctx.db
    url = "https://peer.example/notes/1"
    path = blog.posts_dir / "quoting.md"
    path.write_text(f"---\ntitle: Q\ndate: 2026-03-01\nquote_of: {url}\n---\nSee this.\n", "utf-8")
    assert pending.lookups_due(config, db, blog.build())
    now = time.time()
    db.con.execute(
        "INSERT INTO quote_cache(url, object_id, author_id, card, fetched, expires) "
        "VALUES (?, ?, 'https://peer.example/u/a', '{}', ?, ?)",
        (url, url, now, now + 3600),
    )
    assert not pending.lookups_due(config, db, blog.build())


async def test_deliveries_due_are_queued_due_rows_and_rows_left_sending(blog: Site) -> None:
    db = blog.ctx.db
    assert not pending.deliveries_due(db)
    now = time.time()
    activity = {"id": "https://blog.example/a/1", "type": "Create"}
    delivery.enqueue(db, activity, ["https://peer.example/inbox"], now=now + 3600)
    assert not pending.deliveries_due(db)  # a retry scheduled for later
    assert pending.deliveries_due(db, now=now + 3601)
    db.con.execute("UPDATE deliveries SET state = 'sending'")
    assert pending.deliveries_due(db)  # a killed worker's claim: recovered and sent
    db.con.execute("UPDATE deliveries SET state = 'done'")
    assert not pending.deliveries_due(db)


async def test_changed_pins_are_due_only_when_the_stored_list_differs(blog: Site) -> None:
    config, db = blog.ctx.config, blog.ctx.db
    blog.build()
    db.set_meta("featured_ids", json.dumps([]))
    assert not pending._pins_changed(config, db)
    db.set_meta("featured_ids", json.dumps(["https://blog.example/ap/posts/gone.json"]))
    assert pending._pins_changed(config, db)
