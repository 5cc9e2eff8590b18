"""The order rows are started in: what readers see first, and no Undo or Delete before what
it undoes (``bridge.federation.inbox.order``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge.errors import FetchError
from bridge.federation.context import Context
from bridge.federation.inbox import InboxProcessor
from bridge.federation.inbox.handlers import Handler

pytestmark = pytest.mark.anyio

ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
CAROL = "https://c.example/users/carol"


def store(ctx: Context, activity: dict[str, Any], received: float) -> str:
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received) VALUES (?,?,?,?,?)",
            (activity["id"], activity["type"], activity["actor"], json.dumps(activity), received),
        )
    return str(activity["id"])


def status(ctx: Context, activity_id: str) -> str:
    row = ctx.db.one("SELECT status FROM inbox WHERE id = ?", (activity_id,))
    assert row is not None
    return str(row["status"])


def recorder(seen: list[str], delay: float = 0.0) -> Handler:
    async def handle(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        seen.append(f"start {activity['id']}")
        await asyncio.sleep(delay)
        seen.append(f"end {activity['id']}")

    return handle


def like(n: int, actor: str = BOB) -> dict[str, Any]:
    return {"id": f"{actor}#like{n}", "type": "Like", "actor": actor, "object": "p"}


async def test_replies_and_deletes_start_before_likes_received_earlier(ctx: Context) -> None:
    seen: list[str] = []
    for n in range(5):
        store(ctx, like(n), received=float(n))
    store(ctx, {"id": "c1", "type": "Create", "actor": ALICE, "object": {}}, received=10.0)
    store(ctx, {"id": "d1", "type": "Delete", "actor": CAROL, "object": "x"}, received=11.0)
    store(ctx, {"id": "f1", "type": "Follow", "actor": ALICE, "object": "me"}, received=12.0)
    handler = recorder(seen)
    processor = InboxProcessor(
        ctx, {"Like": handler, "Create": handler, "Delete": handler, "Follow": handler}
    )
    while await processor.process_pending(limit=2, wait=None):
        pass
    started = [s.split()[1] for s in seen if s.startswith("start")]
    assert started == ["c1", "d1", *(f"{BOB}#like{n}" for n in range(5)), "f1"]


async def test_an_undo_runs_after_its_like_even_when_the_like_is_slow(ctx: Context) -> None:
    seen: list[str] = []
    liked = store(ctx, like(1), received=1.0)
    store(ctx, {"id": "c", "type": "Create", "actor": BOB, "object": {}}, received=2.0)
    undo = {"id": "u", "type": "Undo", "actor": BOB, "object": like(1)}
    store(ctx, undo, received=3.0)
    relike = store(ctx, like(2), received=4.0)
    handlers = {"Like": recorder(seen, 0.05), "Undo": recorder(seen), "Create": recorder(seen)}
    processor = InboxProcessor(ctx, handlers, per_origin=8)
    while await processor.process_pending(wait=None):
        pass
    assert seen.index(f"end {liked}") < seen.index("start u")  # the Like was applied first
    assert seen.index("end u") < seen.index(f"start {relike}")  # a Like again comes after
    assert seen.index("start c") < seen.index(f"start {liked}")  # the reply went first
    assert {status(ctx, i) for i in (liked, "c", "u", relike)} == {"done"}


async def test_an_undo_waits_while_its_like_waits_for_a_retry(ctx: Context) -> None:
    seen: list[str] = []
    moment = [100.0]
    tries = [0]

    async def flaky_like(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        tries[0] += 1
        if tries[0] == 1:
            raise FetchError("the actor's server did not answer")
        seen.append("like")

    liked = store(ctx, like(1), received=1.0)
    undo = store(ctx, {"id": "u", "type": "Undo", "actor": BOB, "object": liked}, received=2.0)
    processor = InboxProcessor(
        ctx,
        {"Like": flaky_like, "Undo": recorder(seen)},
        retry_delay=lambda n: 30.0,
        clock=lambda: moment[0],
    )
    await processor.process_pending(wait=None)
    await processor.process_pending(wait=None)
    assert (status(ctx, liked), status(ctx, undo), seen) == ("new", "new", [])
    moment[0] += 31  # the Like is due again
    while await processor.process_pending(wait=None):
        pass
    assert seen == ["like", "start u", "end u"]
    assert (status(ctx, liked), status(ctx, undo)) == ("done", "done")


async def test_a_delete_waits_for_an_earlier_row_of_its_actor(ctx: Context) -> None:
    seen: list[str] = []
    moment = [100.0]
    calls = [0]

    async def flaky_create(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise FetchError("the parent post did not load")
        seen.append("create")

    created = store(ctx, {"id": "c", "type": "Create", "actor": ALICE, "object": {}}, 1.0)
    store(ctx, like(1), received=2.0)
    deleted = store(ctx, {"id": "d", "type": "Delete", "actor": ALICE, "object": "n"}, 3.0)
    processor = InboxProcessor(
        ctx,
        {"Create": flaky_create, "Delete": recorder(seen), "Like": recorder(seen)},
        retry_delay=lambda n: 30.0,
        clock=lambda: moment[0],
    )
    while await processor.process_pending(wait=None):
        pass
    assert (status(ctx, created), status(ctx, deleted)) == ("new", "new")
    assert "start d" not in seen  # not before the Create it may delete
    moment[0] += 31
    while await processor.process_pending(wait=None):
        pass
    assert seen.index("create") < seen.index("start d")
    assert status(ctx, deleted) == "done"


async def test_undos_naming_each_other_cannot_hold_each_other_forever(ctx: Context) -> None:
    seen: list[str] = []
    store(ctx, {"id": "u1", "type": "Undo", "actor": BOB, "object": "u2"}, received=1.0)
    store(ctx, {"id": "u2", "type": "Undo", "actor": BOB, "object": "u1"}, received=1.0)
    store(ctx, {"id": "u3", "type": "Undo", "actor": BOB, "object": "u3"}, received=2.0)
    processor = InboxProcessor(ctx, {"Undo": recorder(seen)})
    for _ in range(3):
        await processor.process_pending(wait=None)
    assert {status(ctx, i) for i in ("u1", "u2", "u3")} == {"done"}


async def test_likes_of_one_actor_still_run_side_by_side(ctx: Context) -> None:
    seen: list[str] = []
    for n in range(2):
        store(ctx, like(n), received=float(n))
    processor = InboxProcessor(ctx, {"Like": recorder(seen, 0.05)})
    await processor.process_pending(wait=None)
    assert seen[:2] == [f"start {BOB}#like0", f"start {BOB}#like1"]
