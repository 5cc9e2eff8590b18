"""Pinned posts end to end with Fedify: the peer follows, receives the Create, then a
verified ``Add`` when the post is pinned and a verified ``Remove`` when it is unpinned,
both targeting the ``featured`` collection Fedify reads from the actor."""

from __future__ import annotations

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


def test_pin_and_unpin_reach_a_follower(blog: Blog, fedify_peer: FedifyPeer) -> None:
    blog.write_post("first", "Hello **fediverse**.", title="First post")
    blog.start()
    fedify_peer.follow(blog.handle)
    fedify_peer.wait_for("Accept", timeout=20)
    blog.wait_until(blog.followers, what="follower stored")
    blog.cli("publish", "--no-webmentions")
    fedify_peer.wait_for("Create", timeout=30)

    post_id = f"{blog.base_url}/ap/posts/first.json"
    featured_url = f"{blog.base_url}/ap/featured.json"
    blog.write_post("first", "Hello **fediverse**.", title="First post", pinned=True)
    blog.cli("publish", "--no-webmentions")
    add = fedify_peer.wait_for("Add", timeout=30)
    assert add["verified"], add
    assert add["raw"]["object"] == post_id
    assert add["raw"]["target"] == featured_url

    # Fedify reads the actor's featured collection and the pinned object in it.
    actor = fedify_peer.lookup(blog.actor_id)
    assert actor["raw"]["featured"] == featured_url
    featured = fedify_peer.lookup(featured_url, items=True)
    assert featured["ok"], featured
    ids = [item if isinstance(item, str) else item.get("id") for item in featured["items"]]
    assert ids == [post_id]

    blog.write_post("first", "Hello **fediverse**.", title="First post")
    blog.cli("publish", "--no-webmentions")
    remove = fedify_peer.wait_for("Remove", timeout=30)
    assert remove["verified"], remove
    assert remove["raw"]["object"] == post_id
    assert remove["raw"]["target"] == featured_url
