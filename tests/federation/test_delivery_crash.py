"""kill -9 a delivery worker mid-run against a real, slow loopback peer, then restart it.

The peer (``tests.webserver``) logs each request when it arrives and answers 202 after
0.3 s.  A worker subprocess delivers 3 activities to 20 inboxes on it (one host, so at most
``per_host`` = 4 requests are in flight).  The test kills the worker after some rows are
``done``, restarts it to completion and checks the at-least-once contract: every pair
arrived, nothing recorded ``done`` before the kill arrived twice, and the only duplicates
are the requests in flight at the kill (claimed rows the peer had received), no more of them
than ``per_host``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bridge import keys
from bridge.db import Database
from bridge.federation.delivery import enqueue
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 (`web` fixture)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parents[1] / "data" / "delivery" / "run_worker.py"
KEY_ID = "https://blog.example/ap/actor.json#main-key"
ACTIVITIES = 3
INBOXES = 20
PER_HOST = 4  # what run_worker.py configures
DELAY = 0.3

Pair = tuple[str, str]  # (activity id, inbox path)


def activity(n: int) -> dict[str, object]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"https://blog.example/ap/posts/p{n}/create.json",
        "type": "Create",
        "actor": "https://blog.example/ap/actor.json",
        "object": {"id": f"https://blog.example/ap/posts/p{n}.json", "content": f"post {n}"},
    }


def states(db: Database) -> dict[Pair, str]:
    rows = db.query("SELECT activity_id, inbox, state FROM deliveries")
    return {(r["activity_id"], "/" + r["inbox"].split("/", 3)[3]): r["state"] for r in rows}


def received(web: WebServer) -> Counter[Pair]:
    return Counter((json.loads(r.body)["id"], r.path) for r in list(web.requests))


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_delivers_each_pair_at_least_once(
    web: WebServer, tmp_path: Path
) -> None:
    def slow_inbox(ex: Exchange) -> None:
        if ex.sleep(DELAY):
            ex.send(202, {"Content-Type": "text/plain"}, b"accepted")

    paths = [f"/users/{i}/inbox" for i in range(INBOXES)]
    for path in paths:
        web.route(path, handler=slow_inbox, methods=["POST"])

    state_dir = tmp_path / "state"
    keys.generate(state_dir)
    db_path = state_dir / "state.sqlite3"
    db = Database(db_path)
    try:
        for n in range(ACTIVITIES):
            enqueue(db, activity(n), [web.url(p) for p in paths])
        total = ACTIVITIES * INBOXES
        assert len(states(db)) == total

        command = [sys.executable, str(SCRIPT), str(db_path), str(state_dir), KEY_ID]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        first = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 30
            while sum(s == "done" for s in states(db).values()) < total // 4:
                assert first.poll() is None, "the worker ended before it could be killed"
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
        finally:
            if first.poll() is None:
                first.kill()
            out, err = first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL, err.decode()
        assert out.decode().splitlines()[0] == '{"recovered": 0}'

        time.sleep(DELAY)  # let the peer log any request that was already on the wire
        at_kill = states(db)
        received_before = received(web)
        done_before = {pair for pair, state in at_kill.items() if state == "done"}
        claimed = {pair for pair, state in at_kill.items() if state == "sending"}
        in_flight = claimed & set(received_before)  # reached the peer, no answer recorded
        assert 0 < len(done_before) < total

        second = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, timeout=120, check=False
        )
        assert second.returncode == 0, second.stderr.decode()
        recovered, stats = (json.loads(line) for line in second.stdout.decode().splitlines())
        assert recovered == {"recovered": len(claimed)}
        assert stats["delivered"] == total - len(done_before)
        assert stats["retrying"] == stats["failed"] == stats["gone"] == 0

        final = states(db)
        assert set(final.values()) == {"done"}
    finally:
        db.close()

    counts = received(web)
    everything = {(activity(n)["id"], p) for n in range(ACTIVITIES) for p in paths}
    assert set(counts) == everything  # every pair arrived at least once
    twice = {pair for pair, n in counts.items() if n > 1}
    assert max(counts.values()) <= 2
    assert not twice & done_before  # nothing recorded done was sent again
    # Exactly the requests in flight at the kill were received twice, and there were no
    # more of those than the per-host limit allows.
    assert twice == in_flight
    assert len(twice) <= PER_HOST

    for request in web.requests:
        assert request.method == "POST"
        assert request.headers["signature"].startswith(f'keyId="{KEY_ID}"')
        assert request.headers["content-type"] == "application/activity+json"
        assert request.headers["digest"].startswith("SHA-256=")
    for pair in twice:  # the duplicate is the same activity, byte for byte
        copies = {r.body for r in web.requests if (json.loads(r.body)["id"], r.path) == pair}
        assert len(copies) == 1
    print(
        f"killed with {len(done_before)}/{total} done, {len(claimed)} claimed, "
        f"{len(in_flight)} in flight; {len(twice)} pairs received twice"
    )
