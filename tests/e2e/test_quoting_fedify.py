"""Quoting a Fedify post from the blog end to end (FEP-044f; Fedify's vocabulary has
``QuoteRequest`` and ``QuoteAuthorization``): ``publish`` fetches the quoted Note, the
peer receives a verified ``QuoteRequest`` whose instrument is our post, answers with an
``Accept`` whose ``result`` is a stamp it serves, the daemon dereferences and checks that
stamp, and the next publish sends the peer an ``Update`` carrying ``quoteAuthorization``,
which Fedify parses."""

from __future__ import annotations

import pytest

from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


def test_quote_request_accept_and_update(blog: Blog, fedify_peer: FedifyPeer) -> None:
    note_id = fedify_peer.note("The words worth quoting.")["noteId"]
    blog.write_post("quoting", "I agree with this.", title="Quoting", quote_of=note_id)
    blog.start()
    our_id = f"{blog.base_url}/ap/posts/quoting.json"

    out = blog.cli("publish", "--no-webmentions")
    assert "1 new" in out.stdout, out.stdout + out.stderr
    request = fedify_peer.wait_for("QuoteRequest", timeout=30)
    assert request["verified"], request  # Fedify checked our HTTP signature
    assert request["proof"] == {"present": True, "verified": True}, request["proof"]
    raw = request["raw"]
    assert raw["actor"] == blog.actor_id and raw["object"] == note_id
    assert raw["instrument"]["id"] == our_id and raw["instrument"]["quote"] == note_id
    # Pending: the page shows the fetched Note as a card; the object names the quote only.
    assert "The words worth quoting." in blog.html("/posts/quoting/")
    pending = blog.get("/ap/posts/quoting.json").json()
    assert pending["quote"] == note_id and "quoteAuthorization" not in pending

    stamp_id = fedify_peer.quote_authorization(our_id, note_id)
    accept = {"type": "Accept", "object": raw["id"], "result": stamp_id}
    fedify_peer.send(accept, to=blog.actor_id)

    # The daemon fetches and checks the stamp, then rebuilds the post.
    blog.wait_until(
        lambda: blog.get("/ap/posts/quoting.json").json().get("quoteAuthorization") == stamp_id,
        timeout=30,
        what="quoteAuthorization in the built object",
    )
    out = blog.cli("publish", "--no-webmentions")
    assert "1 updated" in out.stdout, out.stdout + out.stderr
    update = fedify_peer.wait_for("Update", timeout=30)
    assert update["verified"], update
    obj = update["raw"]["object"]
    assert obj["quoteAuthorization"] == stamp_id and obj["quote"] == note_id

    # Fedify reads our object as a quote with its authorization.
    looked = fedify_peer.lookup(our_id)
    assert looked["ok"], looked
    assert looked["object"]["quoteAuthorization"] == stamp_id, looked["object"]
