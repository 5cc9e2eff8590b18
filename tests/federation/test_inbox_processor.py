"""The inbox processor: outcomes per row, handler bugs surfacing, the forwarded column."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.db import Database
from bridge.errors import FetchError
from bridge.federation.context import Context
from bridge.federation.inbox import InboxProcessor

pytestmark = pytest.mark.anyio

ACTOR = "https://remote.example/users/alice"


def store(ctx: Context, activity: Any, *, forwarded: bool = False, n: int = 1) -> str:
    activity_id = f"{ACTOR}#a{n}"
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received, forwarded) VALUES (?,?,?,?,?,?)",
            (activity_id, "Like", ACTOR, json.dumps(activity), float(n), forwarded),
        )
    return activity_id


def row(ctx: Context, activity_id: str) -> sqlite3.Row:
    found = ctx.db.one("SELECT * FROM inbox WHERE id = ?", (activity_id,))
    assert found is not None
    return found


async def test_a_handler_bug_is_raised_after_the_batch_and_the_row_fails(ctx: Context) -> None:
    seen: list[str] = []

    async def buggy(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        seen.append(activity["id"])
        if activity["id"].endswith("1"):
            raise KeyError("object")  # a handler bug, not a hostile payload

    first = store(ctx, {"id": "x1", "type": "Like", "actor": ACTOR}, n=1)
    second = store(ctx, {"id": "x2", "type": "Like", "actor": ACTOR}, n=2)
    processor = InboxProcessor(ctx, {"Like": buggy})
    with pytest.raises(KeyError, match="object"):
        await processor.process_pending(wait=None)
    assert seen == ["x1", "x2"]  # the bug did not stop the row after it
    assert (row(ctx, first)["status"], row(ctx, first)["error"]) == ("failed", "KeyError: 'object'")
    assert row(ctx, second)["status"] == "done"
    assert await processor.process_pending(wait=None) == 0  # nothing is retried forever


@pytest.mark.parametrize(
    "payload",
    [[], "text", 7, {"type": ["Like"], "actor": ACTOR}, {"type": "Like", "actor": {"x": 1}}],
)
async def test_a_payload_of_the_wrong_shape_fails_before_any_handler(
    ctx: Context, payload: Any
) -> None:
    called: list[Any] = []

    async def handler(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        called.append(activity)

    stored = store(ctx, payload)
    assert await InboxProcessor(ctx, {"Like": handler}).process_pending(wait=None) == 1
    assert called == []
    assert row(ctx, stored)["status"] == "failed"
    assert row(ctx, stored)["error"].startswith("ValueError: stored activity")


async def test_fetch_errors_are_retried_then_fail(ctx: Context) -> None:
    async def unreachable(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        raise FetchError("https://remote.example/notes/1: HTTP 503")

    stored = store(ctx, {"type": "Like", "actor": ACTOR})
    processor = InboxProcessor(ctx, {"Like": unreachable}, max_tries=2, retry_delay=lambda n: 0)
    await processor.process_pending(wait=None)
    assert (row(ctx, stored)["status"], row(ctx, stored)["tries"]) == ("new", 1)
    await processor.process_pending(wait=None)
    assert (row(ctx, stored)["status"], row(ctx, stored)["tries"]) == ("failed", 2)


async def test_the_forwarded_flag_reaches_the_handler_from_its_column(ctx: Context) -> None:
    flags: list[bool] = []

    async def handler(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        flags.append(forwarded)

    store(ctx, {"type": "Like", "actor": ACTOR}, forwarded=True, n=1)
    store(ctx, {"type": "Like", "actor": ACTOR}, forwarded=False, n=2)
    await InboxProcessor(ctx, {"Like": handler}).process_pending(wait=None)
    assert flags == [True, False]


def test_an_older_database_gets_the_forwarded_column_from_its_error_text(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE inbox (id TEXT PRIMARY KEY, type TEXT NOT NULL, actor TEXT NOT NULL,"
        " body TEXT NOT NULL, received REAL NOT NULL, status TEXT NOT NULL DEFAULT 'new',"
        " tries INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '');"
        "INSERT INTO inbox(id, type, actor, body, received, error)"
        " VALUES ('a', 'Create', 'x', '{}', 1, 'forwarded'), ('b', 'Like', 'x', '{}', 2, '');"
    )
    con.close()
    db = Database(path)
    rows = db.query("SELECT id, forwarded, error FROM inbox ORDER BY id")
    assert [tuple(r) for r in rows] == [("a", 1, ""), ("b", 0, "")]
    db.close()
    again = Database(path)  # opening twice migrates once
    assert [tuple(r) for r in again.query("SELECT id, forwarded FROM inbox")] == [
        ("a", 1),
        ("b", 0),
    ]
    again.close()
