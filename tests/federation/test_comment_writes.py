"""A deferring store's writing thread (``bridge.site.comment_writer``): operations land in
the order asked, reads see them before they land, a failure is never lost, and the thread
is gone once the batch is drained.  The last tests are the processor's side: a batch with a
file that could not be written records none of its rows, which run again, and a batch killed
before it is recorded has queued its Salmentions already."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.conversations import salmention
from bridge.federation.context import Context
from bridge.federation.inbox import InboxProcessor
from bridge.site import comment_writer
from bridge.site.comments import CommentStore
from tests.federation.test_inbox_batches import ACTOR, comment
from tests.federation.test_inbox_batches import reply as like_activity
from tests.site.test_comment_index import comment as reply


def test_a_deferred_write_is_read_before_it_lands_and_a_delete_lands_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_land = comment_writer._land

    def slow_land(op: Any) -> None:
        gate.wait(10)  # the thread waits here until the test has read
        real_land(op)

    monkeypatch.setattr(comment_writer, "_land", slow_land)
    store = CommentStore(tmp_path).deferring()
    path = store.write("hello", reply(1))
    assert not path.exists()  # still on its way
    assert store.get(reply(1).id) == ("hello", reply(1))
    assert store.exists("hello", reply(1).id)
    assert store.delete(reply(1).id)
    assert store.get(reply(1).id) is None  # the delete is seen before it lands
    assert not store.exists("hello", reply(1).id)
    store.write("hello", reply(2))
    gate.set()
    assert store.take_unsynced() == [path, path.with_name(f"{reply(2).id}.json")]
    assert not path.exists()  # the write landed first, then the delete
    assert CommentStore(tmp_path).get(reply(2).id) == ("hello", reply(2))
    assert not [t for t in threading.enumerate() if t.name == "comment-writer"]


def test_a_failed_write_is_raised_once_by_the_next_drain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CommentStore(tmp_path).deferring()
    (tmp_path / "comments").mkdir()
    (tmp_path / "comments" / "hello").write_text("a file where a folder must be")
    store.write("hello", reply(1))
    with pytest.raises(OSError):
        store.take_unsynced()
    assert store.get(reply(1).id) is None  # what did not land is not read either
    assert store.take_unsynced() == []


@pytest.mark.anyio
async def test_rows_whose_comment_was_not_written_run_again(ctx: Context) -> None:
    with ctx.db.tx() as con:
        for n in range(3):
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received) VALUES (?, 'Like', ?, ?, ?)",
                (f"{ACTOR}/likes/{n}", ACTOR, json.dumps(like_activity(n)), float(n)),
            )
    runs: list[int] = []

    async def like(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        n = int(activity["id"].rsplit("/", 1)[1])
        runs.append(n)
        c.comments.write("hello" if n != 1 or len(runs) > 3 else "broken", comment(n))

    folder = ctx.config.content_dir / "comments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken").write_text("a file where a folder must be")
    now = [0.0]
    processor = InboxProcessor(ctx, {"Like": like}, clock=lambda: now[0])
    assert await processor.process_pending(wait=None) == 3
    assert {r["status"] for r in ctx.db.query("SELECT status FROM inbox")} == {"new"}
    now[0] = 29.0  # the processor waits 30 s before it runs them again
    assert await processor.process_pending(wait=None) == 0
    assert len(runs) == 3
    now[0] = 30.0
    assert await processor.process_pending(wait=None) == 3  # all three, written this time
    states = ctx.db.query("SELECT status, tries FROM inbox")
    assert {(r["status"], r["tries"]) for r in states} == {("done", 1)}
    assert sorted(runs) == [0, 0, 1, 1, 2, 2]
    assert len(list((folder / "hello").glob("*.json"))) == 3
    assert os.path.isfile(folder / "broken")
    ctx.db.close()


@pytest.mark.anyio
async def test_a_batch_queues_the_salmention_of_a_post_once_its_files_are_there(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.db.tx() as con:
        for n in range(4):
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received) VALUES (?, 'Like', ?, ?, ?)",
                (f"{ACTOR}/likes/{n}", ACTOR, json.dumps(like_activity(n)), float(n)),
            )
    folder = ctx.config.content_dir / "comments" / "hello"
    queued: list[tuple[list[str], int]] = []
    real = salmention.queue_salmentions

    def record(db: Any, slugs: list[str]) -> None:
        queued.append((slugs, len(list(folder.glob("*.json")))))
        real(db, slugs)

    monkeypatch.setattr(salmention, "queue_salmentions", record)

    async def replied(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        n = int(activity["id"].rsplit("/", 1)[1])
        c.comments.write("hello", reply(n))
        salmention.note_change(c, "hello", reply(n))

    processor = InboxProcessor(ctx, {"Like": replied})
    assert await processor.process_pending(wait=None) == 4
    assert queued == [(["hello"], 4)]  # once for the batch, after its four files
    assert set(salmention.read_queue(ctx.db)) == {"hello"}
    ctx.db.close()


class _Killed(BaseException):
    """Stands for a ``kill -9`` during the flush: nothing after it runs."""


@pytest.mark.anyio
async def test_a_kill_before_the_batch_is_recorded_keeps_its_salmention_queued(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows of a killed batch run again and find their comments written, so they queue
    no Salmention: the first run's must already be queued when the process dies."""
    with ctx.db.tx() as con:
        for n in range(2):
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received) VALUES (?, 'Like', ?, ?, ?)",
                (f"{ACTOR}/likes/{n}", ACTOR, json.dumps(like_activity(n)), float(n)),
            )

    async def replied(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        n = int(activity["id"].rsplit("/", 1)[1])
        if c.comments.get(reply(n).id) is None:  # as the reply handler: a comment once
            c.comments.write("hello", reply(n))
            salmention.note_change(c, "hello", reply(n))

    def killed(self: CommentStore, written: list[Path]) -> None:
        raise _Killed

    monkeypatch.setattr(CommentStore, "sync", killed)
    processor = InboxProcessor(ctx, {"Like": replied})
    with pytest.raises(_Killed):
        await processor.process_pending(wait=None)
    assert {r["status"] for r in ctx.db.query("SELECT status FROM inbox")} == {"new"}
    queued = salmention.read_queue(ctx.db)
    assert set(queued) == {"hello"}

    monkeypatch.undo()
    again = InboxProcessor(ctx, {"Like": replied})  # the restarted process
    assert await again.process_pending(wait=None) == 2
    assert {r["status"] for r in ctx.db.query("SELECT status FROM inbox")} == {"done"}
    assert salmention.read_queue(ctx.db) == queued  # the rows queued nothing this time
    ctx.db.close()


@pytest.mark.anyio
async def test_the_wait_after_a_failed_write_doubles_up_to_five_minutes_while_the_disk_fails(
    ctx: Context,
) -> None:
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received) VALUES (?, 'Like', ?, ?, 0)",
            (f"{ACTOR}/likes/0", ACTOR, json.dumps(like_activity(0))),
        )
    folder = ctx.config.content_dir / "comments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hello").write_text("a file where a folder must be")

    async def like(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        c.comments.write("hello", comment(0))

    now = [0.0]
    processor = InboxProcessor(ctx, {"Like": like}, clock=lambda: now[0])
    starts = []
    for moment in (0.0, 29.0, 30.0, 89.0, 90.0):
        now[0] = moment
        if await processor.process_pending(wait=None):
            starts.append(moment)
    assert starts == [0.0, 30.0, 90.0]  # 30 s, then 60 s
    for moment in (209.0, 210.0, 450.0, 750.0, 1049.0, 1050.0):  # 120 s, 240 s, then 300 s
        now[0] = moment
        if await processor.process_pending(wait=None):
            starts.append(moment)
    assert starts == [0.0, 30.0, 90.0, 210.0, 450.0, 750.0, 1050.0]
    (folder / "hello").unlink()
    now[0] = 1350.0
    assert await processor.process_pending(wait=None) == 1
    assert [r["status"] for r in ctx.db.query("SELECT status FROM inbox")] == ["done"]
    ctx.db.close()
