"""Self-test of the Fedify interop harness: two Fedify peers federate over loopback.

This proves the harness (install, start, https->http mapping for acct: lookups,
signing, verification, recording, lookup) before the blog's daemon takes one
side of the conversation.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import fedify
from .fedify import FedifyPeer

# Re-exported so pytest finds the fixtures in this module.
fedify_peers = fedify.fedify_peers
fedify_peer = fedify.fedify_peer

pytestmark = pytest.mark.slow


def test_single_peer_serves_its_actor(fedify_peer: FedifyPeer) -> None:
    health = fedify_peer.health()
    assert health["ok"] is True
    assert health["actor"] == fedify_peer.actor_id
    assert health["handle"] == fedify_peer.handle
    assert health["node"].startswith("v22.")

    found = fedify_peer.lookup(fedify_peer.handle)
    assert found["ok"], found["errors"]
    assert found["url"] == fedify_peer.actor_id
    assert found["type"] == "Person"
    assert found["raw"]["inbox"] == fedify_peer.inbox
    assert found["raw"]["endpoints"]["sharedInbox"] == fedify_peer.shared_inbox


def test_two_peers_follow_reply_like(fedify_peers: Callable[..., FedifyPeer]) -> None:
    a = fedify_peers("alice")
    b = fedify_peers("bob")

    # A follows B by acct handle: WebFinger goes to https://127.0.0.1:port (mapped to http).
    follow = a.follow(b.handle)
    assert follow["actor"] == b.actor_id
    got_follow = b.wait_for("Follow", lambda r: r["id"] == follow["followId"])
    assert got_follow["actor"] == a.actor_id
    assert got_follow["object"] == b.actor_id
    assert got_follow["signature"]["scheme"] == "rfc9421"
    assert got_follow["signature"]["proof"] is True
    accept = a.wait_for("Accept", lambda r: r["actor"] == b.actor_id)
    assert accept["object"] == follow["followId"]
    assert [f["id"] for f in b.state()["followers"]] == [a.actor_id]
    assert a.state()["following"][0]["state"] == "accepted"

    # B posts; A receives it as a follower.
    note = b.note("<p>Hello from bob</p>")
    create = a.wait_for("Create", lambda r: r["object"] == note["noteId"])
    assert create["objectType"] == "Note"

    # A replies to B's note and likes it; B verifies and records both.
    reply = a.reply(note["noteId"], "<p>Hi bob!</p>")
    assert reply["to"] == [b.actor_id]
    got_reply = b.wait_for("Create", lambda r: r["object"] == reply["noteId"])
    reply_json = got_reply["raw"]["object"]
    assert reply_json["inReplyTo"] == note["noteId"]
    assert reply_json["content"] == "<p>Hi bob!</p>"
    assert b.actor_id in reply_json["cc"]
    mention = reply_json["tag"]
    mention = mention[0] if isinstance(mention, list) else mention
    assert mention["type"] == "Mention"
    assert mention["href"] == b.actor_id
    assert mention["name"] == b.handle

    like = a.like(note["noteId"])
    got_like = b.wait_for("Like", lambda r: r["id"] == like["id"])
    assert got_like["object"] == note["noteId"]
    assert got_like["actor"] == a.actor_id

    # Edits need fresh activity ids; the deleted note answers 410.
    edit = a.edit(reply["noteId"], "<p>Hi bob (edited)</p>")
    got_update = b.wait_for("Update", lambda r: r["id"] == edit["id"])
    assert got_update["json"]["object"]["content"] == "<p>Hi bob (edited)</p>"
    assert "updated" in got_update["json"]["object"]
    deleted = a.delete(reply["noteId"])
    got_delete = b.wait_for("Delete", lambda r: r["id"] == deleted["id"])
    assert got_delete["objectType"] == "Tombstone"

    # lookup returns B's actor and A's (dereferenceable) note as Fedify parses them.
    actor = a.lookup(b.actor_id)
    assert actor["ok"], actor["errors"]
    assert actor["type"] == "Person"
    assert actor["object"]["preferredUsername"] == "bob"
    assert actor["raw"]["id"] == b.actor_id
    assert actor["proof"] == {"present": False, "verified": None}
    b_note = a.lookup(note["noteId"])
    assert b_note["ok"], b_note["errors"]
    assert b_note["type"] == "Note"
    followers = a.lookup(b.followers_id, items=True)
    assert followers["ok"], followers["errors"]
    assert followers["items"] == [a.actor_id]

    # Everything B's inbox took was verified by Fedify and answered 2xx.
    assert all(r["verified"] for r in b.received())
    assert {d["status"] for d in b.deliveries()} == {202}


def test_draft_cavage_first_knock(fedify_peers: Callable[..., FedifyPeer]) -> None:
    a = fedify_peers("carol", first_knock="draft-cavage-http-signatures-12")
    b = fedify_peers("dave")
    follow = a.follow(b.handle, shared_inbox=False)
    assert follow["inbox"] == b.inbox
    got = b.wait_for("Follow", lambda r: r["id"] == follow["followId"])
    assert got["signature"]["scheme"] == "draft-cavage"
    assert got["inbox"] == "/users/dave/inbox"
    a.wait_for("Accept", lambda r: r["actor"] == b.actor_id)


def test_unsigned_delivery_is_recorded_as_unverified(fedify_peer: FedifyPeer) -> None:
    import httpx

    activity = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://127.0.0.1:9/activities/1",
        "type": "Like",
        "actor": "http://127.0.0.1:9/users/mallory",
        "object": fedify_peer.actor_id,
    }
    response = httpx.post(
        fedify_peer.shared_inbox,
        json=activity,
        headers={"Content-Type": "application/activity+json"},
    )
    assert response.status_code == 401
    rejected = fedify_peer.wait_for("Like", verified=False)
    assert rejected["verified"] is False
    assert rejected["reason"]["type"] == "noSignature"
    assert fedify_peer.deliveries()[-1]["status"] == 401
