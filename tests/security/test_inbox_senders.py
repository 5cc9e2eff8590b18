"""Smaller holes around senders: the rate limit keyed by host and port, domain blocks spelled
with a trailing dot, and a POST aborted mid-body logging one line instead of a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.daemon import app as daemon_mod
from bridge.federation import followers
from bridge.federation.inbox import RateLimiter
from bridge.federation.inbox.receive import sender_key
from tests.security.conftest import ALICE, InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("inbox")]

ALICE_8443 = "https://remote.example:8443/users/alice"


def follow(h: InboxHarness, actor: str, n: int = 1) -> dict[str, Any]:
    return {"id": f"{actor}#follows/{n}", "type": "Follow", "actor": actor, "object": h.actor_id}


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://remote.example/users/a", "remote.example"),
        ("https://Remote.Example./users/a", "remote.example"),
        ("https://remote.example:443/users/a", "remote.example"),
        ("https://remote.example:8443/users/a", "remote.example:8443"),
        ("http://remote.example:80/users/a", "remote.example"),
        ("http://remote.example:443/users/a", "remote.example:443"),
    ],
)
def test_senders_are_counted_by_host_and_port(url: str, key: str) -> None:
    assert sender_key(url) == key


async def test_another_port_is_another_sender_for_the_rate_limit(inbox: InboxHarness) -> None:
    inbox.daemon.limiter = RateLimiter(per_minute=100, follows_per_minute=1)
    inbox.keys[ALICE_8443] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.add_actor(ALICE_8443, inbox.keys[ALICE_8443])
    assert (await inbox.post(follow(inbox, ALICE, 1))).status_code == 202
    assert (await inbox.post(follow(inbox, ALICE, 2))).status_code == 429
    assert (await inbox.post(follow(inbox, ALICE_8443, 1), signer=ALICE_8443)).status_code == 202
    assert (await inbox.post(follow(inbox, ALICE_8443, 2), signer=ALICE_8443)).status_code == 429


@pytest.mark.parametrize("blocked", ["remote.example", "remote.example.", "REMOTE.example."])
@pytest.mark.parametrize(
    ("actor", "handle"),
    [
        ("https://remote.example./users/alice", ""),
        ("https://sub.remote.example./users/alice", ""),
        ("https://remote.example./users/alice", "@alice@remote.example."),
    ],
)
async def test_a_domain_block_holds_with_a_trailing_dot(
    inbox: InboxHarness, blocked: str, actor: str, handle: str
) -> None:
    followers.block(inbox.db, blocked)
    assert followers.blocks(inbox.db) == ["remote.example"]
    assert followers.is_blocked(inbox.db, actor, handle)
    assert not followers.is_blocked(inbox.db, "https://notremote.example/users/x")


@pytest.mark.parametrize("blocked", ["@alice@remote.example", "alice@remote.example."])
async def test_a_handle_block_holds_with_a_trailing_dot(inbox: InboxHarness, blocked: str) -> None:
    followers.block(inbox.db, blocked)
    assert followers.blocks(inbox.db) == ["@alice@remote.example"]
    assert followers.is_blocked(inbox.db, "https://elsewhere.example/u/1", "@alice@remote.example.")
    assert not followers.is_blocked(
        inbox.db, "https://elsewhere.example/u/1", "@bob@remote.example"
    )


async def test_an_aborted_post_logs_one_line(
    inbox: InboxHarness, caplog: pytest.LogCaptureFixture
) -> None:
    app = daemon_mod.create_app(inbox.config, daemon=inbox.daemon)
    messages = [
        {"type": "http.request", "body": b'{"type": "Follow", ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/inbox",
        "raw_path": b"/inbox",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"blog.example"),
            (b"content-type", b"application/activity+json"),
            (b"content-length", b"5000"),
        ],
        "client": ("203.0.113.9", 50000),
        "server": ("blog.example", 443),
    }
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)  # must not raise
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in records] == [
        "inbox: 203.0.113.9:50000 closed the connection before the body was read"
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert inbox.inbox_rows() == []
