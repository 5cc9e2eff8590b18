"""The delivery worker records the outcomes of attempts that end together in one
transaction (``DeliveryWorker._flush_records``, ``queue.record_many``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bridge import keys
from bridge.db import Database
from bridge.federation.delivery import DeliveryStats, DeliveryWorker, enqueue, queue


def test_outcomes_of_one_turn_share_a_transaction_and_every_row_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(tmp_path / "state.sqlite3")
    inboxes = [f"https://h{i}.example/inbox" for i in range(60)]
    inboxes.append("https://gone.example/inbox")
    doc = {"id": "https://blog.example/ap/posts/p/create.json", "type": "Create"}
    enqueue(db, doc, inboxes)
    transactions: list[int] = []
    real = queue.record_many

    def counted(db: Database, items: list[tuple[queue.Job, queue.Outcome, float]]) -> None:
        transactions.append(len(items))
        real(db, items)

    monkeypatch.setattr(queue, "record_many", counted)

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # every attempt in flight ends in the same few turns
        return httpx.Response(410 if request.url.host == "gone.example" else 202)

    gone: list[str] = []
    worker = DeliveryWorker(
        db,
        private_key=keys.generate(tmp_path / "keys").rsa,
        key_id="https://blog.example/ap/actor.json#main-key",
        allow_private=True,
        concurrency=32,
        transport=httpx.MockTransport(answer),
        on_gone=gone.append,
    )
    stats = asyncio.run(worker.run_until_idle())
    assert stats == DeliveryStats(delivered=60, gone=1)
    assert sum(transactions) == 61  # every outcome, once
    assert max(transactions) > 1 and len(transactions) < 61
    assert gone == ["https://gone.example/inbox"]  # after its row was recorded
    states = Counter(r["state"] for r in db.query("SELECT state FROM deliveries"))
    assert states == Counter({"done": 60, "gone": 1})
    db.close()
