"""One slow origin stalls no one: per-origin concurrency, a time budget per activity, retry
backoff, and no head-of-line blocking in the inbox processor.

The review's case: ten Creates whose object fetches never answer delayed a legitimate Like
by 110 s.  Rules (SECURITY.md; ``bridge.federation.inbox.processor``): at most 2 rows per
sending host and 8 in all run at once, each activity has 20 s for everything it fetches,
a row that ran out of time or could not fetch is retried after 30 s, doubling, and
``process_pending`` returns after half a second even while slow rows run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge import config as config_mod
from bridge import keys as keymod
from bridge.db import Database
from bridge.federation.context import Context, make_context
from bridge.federation.inbox import InboxProcessor
from bridge.federation.inbox.processor import backoff
from tests.security.conftest import ALICE, PUBLIC, InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("slow-origin")]

SLOW = "https://slow.example/users/sloth"


async def test_a_legitimate_like_is_not_delayed_by_a_stalled_origin(inbox: InboxHarness) -> None:
    inbox.unlimited()
    inbox.daemon.processor.budget = 2.0
    inbox.daemon.processor.retry_delay = backoff
    inbox.keys[SLOW] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.add_actor(SLOW, inbox.keys[SLOW])
    inbox.remote.stall("https://slow.example/notes/")
    for n in range(10):
        create = {
            "id": f"{SLOW}/creates/{n}",
            "type": "Create",
            "actor": SLOW,
            "to": [PUBLIC],
            "object": f"https://slow.example/notes/{n}",  # fetched from its origin: hangs
        }
        assert (await inbox.post(create, signer=SLOW)).status_code == 202
    processor = inbox.daemon.processor
    await processor.process_pending()  # the slow rows start and hang
    like = {"id": f"{ALICE}#likes/1", "type": "Like", "actor": ALICE, "object": inbox.post_url}
    assert (await inbox.post(like)).status_code == 202
    started = time.monotonic()
    while True:
        await processor.process_pending()
        row = inbox.db.one("SELECT status FROM inbox WHERE id = ?", (like["id"],))
        if row is not None and row["status"] == "done":
            break
        assert time.monotonic() - started < 1.5, "the Like waited behind the slow origin"
    shown_after = time.monotonic() - started
    assert shown_after < 1.5
    await processor.process_pending(wait=None)  # the slow rows run out of time
    slow = inbox.db.query(
        "SELECT status, tries, next_try, error FROM inbox WHERE actor = ?", (SLOW,)
    )
    assert len(slow) == 10
    assert {(r["status"], r["tries"]) for r in slow} == {("new", 1)}
    assert all(r["next_try"] > time.time() + 20 for r in slow)  # backed off, not hammered
    assert all("longer than 2 s" in r["error"] for r in slow)
    assert await processor.process_pending(wait=None) == 0  # not due again yet


@pytest.fixture
def ctx(site: Path) -> Context:
    config = config_mod.load(site)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected network access: {request.url}")

    return make_context(
        config,
        Database(config.db_path),
        keymod.load(config.state_dir),
        transport=httpx.MockTransport(refuse),
    )


def store(ctx: Context, actor: str, n: int) -> None:
    activity = {"id": f"{actor}#{n}", "type": "Like", "actor": actor}
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO inbox(id, type, actor, body, received) VALUES (?,?,?,?,?)",
            (activity["id"], "Like", actor, json.dumps(activity), float(n)),
        )


async def test_rows_run_at_most_two_per_origin_and_eight_in_all(ctx: Context) -> None:
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    total_peak = 0

    async def slow_handler(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        nonlocal total_peak
        host = activity["actor"].split("/")[2]
        running[host] += 1
        peak[host] = max(peak[host], running[host])
        total_peak = max(total_peak, sum(running.values()))
        await asyncio.sleep(0.05)
        running[host] -= 1

    for h in range(6):
        for n in range(5):
            store(ctx, f"https://h{h}.example/users/u", h * 10 + n)
    processor = InboxProcessor(ctx, {"Like": slow_handler})
    assert await processor.process_pending(wait=None) == 30
    assert max(peak.values()) == 2
    assert total_peak == 8
    ctx.db.close()


async def test_an_activity_over_its_budget_is_retried_later_not_at_once(ctx: Context) -> None:
    async def hang(c: Context, activity: dict[str, Any], forwarded: bool) -> None:
        await asyncio.sleep(3600)

    store(ctx, ALICE, 1)
    processor = InboxProcessor(ctx, {"Like": hang}, budget=0.1)
    assert await processor.process_pending(wait=None) == 1
    row = ctx.db.one("SELECT status, tries, next_try, error FROM inbox")
    assert row is not None
    assert (row["status"], row["tries"]) == ("new", 1)
    assert row["next_try"] >= time.time() + 25
    assert "longer than 0.1 s" in row["error"]
    assert await processor.process_pending(wait=None) == 0
    ctx.db.close()


def test_backoff_doubles_from_thirty_seconds_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 7, 8, 20)] == [30, 60, 120, 1920, 3600, 3600]
