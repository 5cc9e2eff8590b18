"""Batches on both sides of the inbox: the receive path's group commit (``InboxWriter``),
the processor recording outcomes only after the batch's comments are durable, and the
rate limit shared by several HTTP workers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.federation.context import Context
from bridge.federation.inbox import InboxProcessor, InboxWriter, RateLimiter
from bridge.federation.inbox.writer import Row
from bridge.site.posts import Comment, CommentAuthor

pytestmark = pytest.mark.anyio

ACTOR = "https://remote.example/users/alice"


def row(n: int, activity_id: str | None = None) -> Row:
    aid = activity_id or f"{ACTOR}/likes/{n}"
    body = json.dumps({"id": aid, "type": "Like", "actor": ACTOR, "object": "x"})
    return (aid, "Like", ACTOR, body, float(n), False, ACTOR)


async def test_requests_arriving_together_share_one_transaction(ctx: Context) -> None:
    writer = InboxWriter(ctx.db)
    results = await asyncio.gather(*(writer.store(row(n)) for n in range(50)))
    assert results == [True] * 50
    assert writer.batches == 1
    assert ctx.db.one("SELECT count(*) AS n FROM inbox")["n"] == 50  # type: ignore[index]
    await writer.close()
    ctx.db.close()


async def test_close_lets_the_batch_in_flight_commit_and_ends_the_writers_thread(
    ctx: Context,
) -> None:
    import threading

    writer = InboxWriter(ctx.db)
    pending = asyncio.ensure_future(asyncio.gather(*(writer.store(row(n)) for n in range(20))))
    await asyncio.sleep(0)  # the requests are waiting for their batch
    await writer.close()
    assert await pending == [True] * 20
    assert ctx.db.one("SELECT count(*) AS n FROM inbox")["n"] == 20  # type: ignore[index]
    assert not [t for t in threading.enumerate() if t.name.startswith("inbox-writer")]
    assert await writer.store(row(99)) is True  # a later store starts a new thread
    await writer.close()
    ctx.db.close()


async def test_a_batch_is_capped_and_the_rest_commits_in_the_next(ctx: Context) -> None:
    writer = InboxWriter(ctx.db, max_batch=16)
    assert await asyncio.gather(*(writer.store(row(n)) for n in range(40))) == [True] * 40
    assert writer.batches == 3
    await writer.close()
    ctx.db.close()


async def test_a_redelivery_in_the_same_batch_or_a_later_one_is_not_new(ctx: Context) -> None:
    writer = InboxWriter(ctx.db)
    same = row(1)
    first, again = await asyncio.gather(writer.store(same), writer.store(same))
    assert (first, again) == (True, False)
    assert await writer.store(same) is False
    assert ctx.db.one("SELECT count(*) AS n FROM inbox")["n"] == 1  # type: ignore[index]
    await writer.close()
    ctx.db.close()


async def test_each_store_returns_only_after_its_row_committed(ctx: Context) -> None:
    writer = InboxWriter(ctx.db)
    other = sqlite3.connect(ctx.config.db_path)  # another process's view
    try:

        async def store_then_look(n: int) -> int:
            await writer.store(row(n))
            found = other.execute("SELECT count(*) FROM inbox WHERE id = ?", (row(n)[0],))
            return int(found.fetchone()[0])

        assert await asyncio.gather(*(store_then_look(n) for n in range(20))) == [1] * 20
    finally:
        other.close()
        await writer.close()
    ctx.db.close()


async def test_a_failed_transaction_fails_every_request_of_its_batch(ctx: Context) -> None:
    writer = InboxWriter(ctx.db)
    bad: Any = (f"{ACTOR}/bad", "Like", ACTOR, object(), 1.0, False, ACTOR)  # unbindable
    results = await asyncio.gather(writer.store(row(1)), writer.store(bad), return_exceptions=True)
    assert all(isinstance(r, sqlite3.Error) for r in results), results
    assert ctx.db.one("SELECT count(*) AS n FROM inbox")["n"] == 0  # type: ignore[index]
    assert await writer.store(row(2)) is True  # the writer goes on
    await writer.close()
    ctx.db.close()


def test_several_workers_share_the_documented_limit() -> None:
    assert RateLimiter.shared_by(1).limits == {"all": 600, "Follow": 60}
    assert RateLimiter.shared_by(2).limits == {"all": 300, "Follow": 30}
    assert RateLimiter.shared_by(4).limits == {"all": 150, "Follow": 15}
    assert RateLimiter.shared_by(7).limits == {"all": 86, "Follow": 9}  # rounded up
    limiter = RateLimiter.shared_by(4)
    assert all(limiter.allow("remote.example", "Like", 1.0) for _ in range(150))
    assert not limiter.allow("remote.example", "Like", 1.0)


def reply(n: int) -> dict[str, Any]:
    return {"id": f"{ACTOR}/likes/{n}", "type": "Like", "actor": ACTOR, "object": "x"}


def comment(n: int) -> Comment:
    return Comment(
        id=f"{n:020x}",
        type="like",
        protocol="activitypub",
        source=f"{ACTOR}/likes/{n}",
        target="https://blog.example/posts/hello/",
        author=CommentAuthor(name="Alice", url=ACTOR),
        content="",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


async def test_outcomes_are_recorded_only_after_the_batch_comments_are_synced(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.db.tx() as con:
        for n in range(5):
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received) VALUES (?, 'Like', ?, ?, ?)",
                (f"{ACTOR}/likes/{n}", ACTOR, json.dumps(reply(n)), float(n)),
            )
    fsyncs: list[int] = []
    monkeypatch.setattr("os.fsync", lambda fd: fsyncs.append(fd))

    async def like(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        n = int(activity["id"].rsplit("/", 1)[1])
        c.comments.write("hello", comment(n))

    processor = InboxProcessor(ctx, {"Like": like})
    synced: list[tuple[int, dict[str, int]]] = []
    store = ctx.comments.deferring()
    real_sync = store.sync

    def sync(written: list[Path]) -> None:
        states = ctx.db.query("SELECT status FROM inbox")
        seen = {"new": 0, "done": 0}
        for r in states:
            seen[r["status"]] += 1
        synced.append((len(written), seen))
        real_sync(written)

    monkeypatch.setattr(store, "sync", sync)
    processor._store = store
    assert await processor.process_pending(wait=None) == 5
    # One sync for the five files, while every row was still new; then all done at once.
    assert synced == [(5, {"new": 5, "done": 0})]
    assert fsyncs == []  # no per-file fsync while the batch was written
    done = ctx.db.query("SELECT status, tries FROM inbox")
    assert {(r["status"], r["tries"]) for r in done} == {("done", 1)}
    assert len(list((ctx.config.content_dir / "comments" / "hello").glob("*.json"))) == 5
    ctx.db.close()


async def test_a_batch_waits_for_a_lock_held_elsewhere_without_busy_handler_or_checkpoint(
    ctx: Context,
) -> None:
    """The writer's connection polls for the write lock itself and never checkpoints
    (``writer.prepare_connection``): another process holding the lock delays the batch,
    which commits once the lock is free; nothing fails."""
    writer = InboxWriter(ctx.db)
    assert await writer.store(row(0)) is True  # starts the writer's thread
    assert writer._thread is not None
    pragmas = await asyncio.get_running_loop().run_in_executor(
        writer._thread,
        lambda: [ctx.db.one(f"PRAGMA {p}")[0] for p in ("busy_timeout", "wal_autocheckpoint")],  # type: ignore[index]
    )
    assert pragmas == [0, 0]
    other = sqlite3.connect(ctx.db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction
    stored = asyncio.ensure_future(writer.store(row(1)))
    await asyncio.sleep(0.1)
    assert not stored.done()  # waiting for the lock, not failed
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(stored, 5) is True
    assert ctx.db.one("SELECT count(*) AS n FROM inbox")["n"] == 2  # type: ignore[index]
    await writer.close()
    ctx.db.close()
