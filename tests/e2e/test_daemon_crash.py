"""kill -9 of the daemon while it delivers to a slow peer: after a restart every follower
receives every activity, nothing that had succeeded is sent again, and a delivery cut
off mid-request is re-sent with the same activity id (receivers deduplicate by id)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.blog import Blog

pytestmark = pytest.mark.slow

FOLLOWERS = 24
DELAY = 0.4


class SlowPeer:
    """Many personal inboxes on one loopback port; answers 202 after a delay."""

    def __init__(self) -> None:
        self.received: Counter[tuple[str, str]] = Counter()
        self.signed = 0
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                time.sleep(DELAY)
                with peer.lock:
                    peer.received[(self.path, body["id"])] += 1
                    peer.signed += "Signature" in self.headers or "Signature-Input" in self.headers
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def seed_followers(blog: Blog, peer: SlowPeer) -> None:
    blog.cli("followers", "list")  # creates the database
    con = sqlite3.connect(blog.root / ".indiebridge" / "state.sqlite3")
    with con:
        for i in range(FOLLOWERS):
            actor = f"{peer.url}/users/u{i}"
            con.execute(
                "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, handle, state, "
                "created, updated) VALUES (?, ?, NULL, ?, ?, 'accepted', 0, 0)",
                (actor, f"{peer.url}/users/u{i}/inbox", actor + "#follow", f"@u{i}@peer"),
            )
    con.close()


def delivery_states(blog: Blog) -> Counter[str]:
    con = sqlite3.connect(blog.root / ".indiebridge" / "state.sqlite3")
    try:
        return Counter(r[0] for r in con.execute("SELECT state FROM deliveries"))
    finally:
        con.close()


def queued(blog: Blog, peer: SlowPeer) -> set[tuple[str, str]]:
    con = sqlite3.connect(blog.root / ".indiebridge" / "state.sqlite3")
    try:
        rows = con.execute("SELECT inbox, activity_id FROM deliveries").fetchall()
    finally:
        con.close()
    return {(inbox.removeprefix(peer.url), activity_id) for inbox, activity_id in rows}


def test_kill_9_during_delivery_loses_nothing_and_resends_nothing_done(blog: Blog) -> None:
    peer = SlowPeer()
    try:
        blog.write_post("one", "First.", title="One")
        blog.write_post("two", "Second.", title="Two", date="2026-01-02T10:00:00Z")
        seed_followers(blog, peer)
        blog.start()
        out = blog.cli("publish", "--no-webmentions")
        assert "daemon is running" in out.stdout
        creates = {
            (f"/users/u{i}/inbox", a)
            for i in range(FOLLOWERS)
            for a in (
                f"{blog.base_url}/ap/posts/one/create.json",
                f"{blog.base_url}/ap/posts/two/create.json",
            )
        }
        # Everything the publish queued: both Creates, and the actor's Update that a first
        # publish sends to followers who may hold an older profile.
        expected = queued(blog, peer)
        assert creates <= expected

        # Let part of the fan-out finish, then kill -9 mid-flight.
        blog.wait_until(lambda: len(peer.received) >= 10, timeout=30, what="first deliveries")
        blog.kill9()
        done_before = {k for k, n in peer.received.items() if n}
        states = delivery_states(blog)
        assert states["done"] < len(expected), states  # the kill really was mid-way
        con = sqlite3.connect(blog.root / ".indiebridge" / "state.sqlite3")
        done_rows = {
            (r[0].removeprefix(peer.url), r[1])
            for r in con.execute("SELECT inbox, activity_id FROM deliveries WHERE state = 'done'")
        }
        con.close()

        blog.start(build=False)
        blog.wait_until(
            lambda: delivery_states(blog) == Counter({"done": len(expected)}),
            timeout=60,
            what="all deliveries done after restart",
        )
        time.sleep(DELAY * 2)  # let any last duplicate land before counting
        assert set(peer.received) == expected  # nobody missed anything
        # Nothing recorded done before the kill was sent again.
        assert all(peer.received[k] == 1 for k in done_rows)
        # Only requests in flight at the kill may arrive twice, with the same activity id.
        duplicates = {k for k, n in peer.received.items() if n > 1}
        assert duplicates <= (expected - done_rows)
        assert len(duplicates) <= 32
        assert done_before  # sanity: the peer saw traffic before the kill
        assert peer.signed == sum(peer.received.values())
    finally:
        peer.stop()
