"""Quote posts end to end with Fedify (its vocabulary has ``QuoteRequest`` and
``QuoteAuthorization``): the peer asks to quote a blog post, receives a verified
``Accept`` whose ``result`` is a stamp, and dereferences and parses that stamp; with
``quote_policy = "nobody"`` it receives a ``Reject``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow

CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    {
        "QuoteRequest": "https://w3id.org/fep/044f#QuoteRequest",
        "quote": {"@id": "https://w3id.org/fep/044f#quote", "@type": "@id"},
    },
]


def quote_request(peer: FedifyPeer, blog: Blog, post_id: str) -> dict[str, Any]:
    note = peer.note(f"Worth reading. RE: {post_id}")
    note_id = note["noteId"]
    return {
        "@context": CONTEXT,
        "type": "QuoteRequest",
        "id": f"{note_id}/quote",
        "object": post_id,
        "instrument": {
            "type": "Note",
            "id": note_id,
            "attributedTo": peer.actor_id,
            "content": f"Worth reading. RE: {post_id}",
            "quote": post_id,
        },
    }


def test_quote_request_accept_and_stamp(blog: Blog, fedify_peer: FedifyPeer) -> None:
    blog.write_post("first", "Hello **fediverse**.", title="First post")
    blog.start()
    post_id = f"{blog.base_url}/ap/posts/first.json"
    request = quote_request(fedify_peer, blog, post_id)
    fedify_peer.send(request, to=blog.actor_id)

    accept = fedify_peer.wait_for("Accept", timeout=30)
    assert accept["verified"], accept
    raw = accept["raw"]
    assert raw["object"]["id"] == request["id"]
    stamp_url = raw["result"] if isinstance(raw["result"], str) else raw["result"]["id"]
    assert stamp_url.startswith(f"{blog.base_url}/ap/quotes/")

    # The peer dereferences the stamp and Fedify parses it as a QuoteAuthorization.
    stamp = fedify_peer.lookup(stamp_url)
    assert stamp["ok"], stamp
    assert stamp["type"] == "QuoteAuthorization", stamp
    assert stamp["raw"]["attributedTo"] == blog.actor_id
    assert stamp["raw"]["interactingObject"] == request["instrument"]["id"]
    assert stamp["raw"]["interactionTarget"] == post_id
    assert stamp.get("proof", {}).get("verified") is not False, stamp

    # The quote shows under the post once the daemon has rebuilt it.
    blog.wait_until(
        lambda: "Quoted by" in blog.html("/posts/first/"), what="quote shown on the page"
    )


def test_quote_request_rejected_under_nobody(blog: Blog, fedify_peer: FedifyPeer) -> None:
    blog.write_site('quote_policy = "nobody"\n')
    blog.write_post("first", "Hello.", title="First post")
    blog.start()
    post_id = f"{blog.base_url}/ap/posts/first.json"
    request = quote_request(fedify_peer, blog, post_id)
    fedify_peer.send(request, to=blog.actor_id)
    reject = fedify_peer.wait_for("Reject", timeout=30)
    assert reject["verified"], reject
    assert reject["raw"]["object"]["id"] == request["id"]
    assert "result" not in reject["raw"]
