"""End to end: a post that mentions a Fedify account by its handle reaches that account's
inbox with a verified Create carrying the Mention, although the account does not follow."""

from __future__ import annotations

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


def test_a_mentioned_account_that_does_not_follow_gets_the_create(
    blog: Blog, fedify_peer: FedifyPeer
) -> None:
    blog.write_post(
        "hi", f"Hello {fedify_peer.handle}, this is for you. `{fedify_peer.handle}` is code."
    )
    blog.start()

    # publish resolves the handle with WebFinger (Fedify answers), rebuilds, and delivers.
    out = blog.cli("publish", "--no-webmentions")
    assert "1 new" in out.stdout, out.stdout + out.stderr
    create = fedify_peer.wait_for("Create", timeout=30)
    assert create["verified"], create  # Fedify checked our HTTP signature
    assert create["proof"] == {"present": True, "verified": True}, create["proof"]
    obj = create["raw"]["object"]
    assert {"type": "Mention", "href": fedify_peer.actor_id, "name": fedify_peer.handle} in obj[
        "tag"
    ]
    assert fedify_peer.actor_id in obj["cc"]
    assert 'class="u-category h-card mention"' in obj["content"]
    assert f"<code>{fedify_peer.handle}</code>" in obj["content"]
    assert blog.followers() == []  # delivered because of the mention alone

    # The page shows the mention as a link too.
    assert 'class="u-category h-card mention"' in blog.html("/posts/hi/")
