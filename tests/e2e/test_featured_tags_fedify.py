"""Featured hashtags end to end with Fedify: Fedify's vocabulary reads the actor's
``featuredTags`` (``toot:featuredTags``) through its JSON-LD context, the actor's proof
still verifies with the added term, and the collection's items are the ``Hashtag`` links."""

from __future__ import annotations

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


def test_fedify_reads_the_featured_tags(blog: Blog, fedify_peer: FedifyPeer) -> None:
    blog.write_site("featured_tags = 2\n")
    blog.write_post("one", "First.", title="One", tags=["python", "notes"])
    blog.write_post("two", "Second.", title="Two", date="2026-01-02T10:00:00Z", tags=["python"])
    blog.write_post("three", "Third.", title="Three", date="2026-01-03T10:00:00Z", tags=["tv"])
    blog.start()

    featured_tags = f"{blog.base_url}/ap/featured-tags.json"
    actor = fedify_peer.lookup(blog.actor_id)
    assert actor["ok"], actor
    assert actor["proof"]["verified"], actor["proof"]
    # The compacted object is what Fedify understood, not only what was sent.
    assert actor["object"]["featuredTags"] == featured_tags

    collection = fedify_peer.lookup(featured_tags, items=True)
    assert collection["ok"], collection
    assert collection["items"] == [f"{blog.base_url}/tags/python/", f"{blog.base_url}/tags/tv/"]
    assert [item["name"] for item in collection["raw"]["items"]] == ["#python", "#tv"]
