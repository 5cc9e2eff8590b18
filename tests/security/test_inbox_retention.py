"""How much the inbox table keeps: ignored types are not stored, processed bodies are dropped,
ids expire after 30 days, and a maintenance step gives the space back with a size figure.

Rules: SECURITY.md, "The inbox against a determined stranger", and
``bridge.federation.inbox.retention``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bridge.federation import followers
from bridge.federation.inbox import retention
from tests.security.conftest import ALICE, InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("retention")]

DAY = 24 * 3600


def like(h: InboxHarness, n: int) -> dict[str, Any]:
    return {"id": f"{ALICE}#likes/{n}", "type": "Like", "actor": ALICE, "object": h.post_url}


@pytest.mark.parametrize("kind", ["Add", "Move", "Read", "Block", "Accept", "EmojiDance"])
async def test_ignored_types_are_answered_and_never_stored(inbox: InboxHarness, kind: str) -> None:
    """The review's case: sixty 1 MB activities of an ignored type added 57 MiB."""
    inbox.unlimited()
    padding = "x" * 900_000
    size_before = retention.state_size(inbox.db)
    for n in range(20):
        activity = {"id": f"{ALICE}/{kind}/{n}", "type": kind, "actor": ALICE, "pad": padding}
        assert (await inbox.post(activity)).status_code == 202
    assert inbox.inbox_rows() == []
    assert retention.state_size(inbox.db) - size_before < 256 * 1024


async def test_processed_bodies_are_dropped_and_ids_still_deduplicate(inbox: InboxHarness) -> None:
    assert (await inbox.post(like(inbox, 1))).status_code == 202
    await inbox.process()
    (row,) = inbox.inbox_rows()
    assert (row["status"], row["body"]) == ("done", "")
    likes_before = len(inbox.comments())
    assert (await inbox.post(like(inbox, 1))).status_code == 202  # a redelivery
    assert await inbox.process() == 0
    assert len(inbox.inbox_rows()) == 1 and len(inbox.comments()) == likes_before


async def test_prune_keeps_what_is_due_and_drops_the_rest(inbox: InboxHarness) -> None:
    now = time.time()
    rows = [
        ("new-old", "new", now - 60 * DAY, "{}"),
        ("failed-recent", "failed", now - 1 * DAY, "{}"),
        ("failed-week", "failed", now - 8 * DAY, "{}"),
        ("done-month", "done", now - 31 * DAY, ""),
    ]
    with inbox.db.tx() as con:
        for rid, status, received, body in rows:
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received, status) VALUES (?,?,?,?,?,?)",
                (rid, "Like", ALICE, body, received, status),
            )
        con.execute("UPDATE actors SET fetched = ?", (now - 31 * DAY,))
        con.execute("UPDATE keys SET fetched = ?", (now - 31 * DAY,))
    followers.upsert(
        inbox.db,
        actor=ALICE,
        inbox=ALICE + "/inbox",
        shared_inbox=None,
        follow_id=ALICE + "#f",
        handle="@alice@remote.example",
        state="accepted",
    )
    pruned = retention.prune(inbox.db, now)
    kept = {r["id"]: r["body"] for r in inbox.db.query("SELECT id, body FROM inbox")}
    assert kept == {"new-old": "{}", "failed-recent": "{}", "failed-week": ""}
    assert (pruned.bodies, pruned.rows) == (1, 1)
    cached = {r["id"] for r in inbox.db.query("SELECT id FROM actors")}
    assert ALICE in cached  # a follower's actor stays
    assert pruned.actors == len(inbox.keys) - 1


async def test_maintenance_gives_space_back_and_says_how_much(inbox: InboxHarness) -> None:
    now = time.time()
    body = json.dumps({"pad": "y" * 200_000})
    with inbox.db.tx() as con:
        for n in range(20):
            con.execute(
                "INSERT INTO inbox(id, type, actor, body, received, status) VALUES (?,?,?,?,?,?)",
                (f"old-{n}", "Like", ALICE, body, now - 40 * DAY, "failed"),
            )
    report = retention.maintenance(inbox.db, now)
    assert report.pruned.rows == 20
    assert report.bytes_before - report.bytes_after > 3_000_000
    assert report.summary().startswith("state: ")
    assert "20 inbox rows pruned" in report.summary()
