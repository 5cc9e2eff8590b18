"""End to end with an independent implementation: a Fedify server follows the blog by
its acct: handle over loopback, receives Create/Update/Delete verified by Fedify's own
signature and proof checks, and unfollows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421-first"])
def test_follow_publish_update_delete_unfollow(
    blog: Blog, fedify_peer: FedifyPeer, scheme: str
) -> None:
    blog.write_site(f'signature_scheme = "{scheme}"\n')
    blog.write_post("first", "Hello **fediverse**.", title="First post")
    blog.start()

    # Fedify resolves the handle by WebFinger and follows; we Accept.
    fedify_peer.follow(blog.handle)
    accept = fedify_peer.wait_for("Accept", timeout=20)
    assert accept["verified"], accept
    assert accept["proof"] == {"present": True, "verified": True}, accept["proof"]
    # The scheme we signed with: RFC 9421 first when asked (Fedify verifies it), else cavage.
    expected = "rfc9421" if scheme == "rfc9421-first" else "draft-cavage"
    assert accept["signature"]["scheme"] == expected, accept
    followers = blog.wait_until(blog.followers, what="follower stored")
    assert followers[0]["actor"] == fedify_peer.actor_id
    assert followers[0]["state"] == "accepted"

    # Fedify reads our actor and post documents and verifies their integrity proofs.
    actor = fedify_peer.lookup(blog.actor_id)
    assert actor.get("proof", {}).get("verified") is not False, actor

    # Publish: the existing post is newer than federate_since, so it goes out as a Create.
    out = blog.cli("publish", "--no-webmentions")
    assert "1 new" in out.stdout
    create = fedify_peer.wait_for("Create", timeout=30)
    assert create["verified"], create
    assert create["proof"] == {"present": True, "verified": True}, create["proof"]
    assert create["raw"]["object"]["id"] == f"{blog.base_url}/ap/posts/first.json"

    # Edit: an Update with a fresh activity id.
    blog.write_post("first", "Hello again, **fediverse**.", title="First post (edited)")
    out = blog.cli("publish", "--no-webmentions")
    assert "1 updated" in out.stdout
    update = fedify_peer.wait_for("Update", timeout=30)
    assert update["verified"], update
    assert update["proof"] == {"present": True, "verified": True}, update["proof"]
    assert update["raw"]["id"] != create["raw"]["id"]
    assert "Hello again" in update["raw"]["object"]["content"]

    # Delete: a Delete with a Tombstone; the id then answers 410.
    (blog.root / "content" / "posts" / "first.md").unlink()
    out = blog.cli("publish", "--no-webmentions")
    assert "1 deleted" in out.stdout
    delete = fedify_peer.wait_for("Delete", timeout=30)
    assert delete["verified"], delete
    assert delete["proof"] == {"present": True, "verified": True}, delete["proof"]
    assert blog.get("/ap/posts/first.json").status_code == 410

    # Unfollow: the follower is removed.
    fedify_peer.unfollow(blog.actor_id)
    blog.wait_until(lambda: blog.followers() == [], what="follower removed")


def test_move_to_a_fedify_account_that_lists_the_blog(
    blog: Blog, fedify_peers: Callable[..., FedifyPeer]
) -> None:
    """Mastodon ignores a Move unless the target lists the mover in alsoKnownAs: the
    command checks it first; the follower (a second Fedify server) verifies both the HTTP
    signature and the FEP-8b32 proof of the Move, and the actor then carries movedTo."""
    follower = fedify_peers("alice")
    target = fedify_peers("bob")
    blog.start()
    follower.follow(blog.handle)
    follower.wait_for("Accept", timeout=20)
    blog.wait_until(blog.followers, what="follower stored")

    refused = blog.cli("move", target.actor_id, check=False)
    assert refused.returncode != 0
    assert f"does not list {blog.actor_id} in alsoKnownAs" in refused.stderr + refused.stdout
    assert len((refused.stderr + refused.stdout).strip().splitlines()) == 1

    target.config(aliases=[blog.actor_id])
    target.clear_cache()
    out = blog.cli("move", target.actor_id)
    assert "queued for 1 inbox" in out.stdout
    move = follower.wait_for("Move", timeout=30)
    assert move["verified"], move  # the HTTP signature, checked by Fedify's inbox
    assert move["proof"] == {"present": True, "verified": True}, move["proof"]
    assert move["raw"]["object"] == blog.actor_id
    assert move["raw"]["target"] == target.actor_id

    actor = follower.lookup(blog.actor_id)
    assert actor["raw"]["movedTo"] == target.actor_id
    assert actor["proof"]["verified"], actor
    assert "This blog has moved to" in blog.html("/")
