"""End to end: a Fedify server replies to, edits, deletes, likes, boosts and undoes on a
running blog daemon, and after each step the rebuilt page shows the change."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import mf2py
import pytest

from tests.e2e.blog import REPO, Blog
from tests.interop.fedify import FedifyPeer

pytestmark = pytest.mark.slow


# The conversation commands, registered on the main CLI whether or not it does so itself.
CLI = (
    "import sys; from bridge.cli import main; from bridge.cli.conversations import commands; "
    "[main.add_command(c) for c in commands if c.name not in main.commands]; "
    "main(sys.argv[1:], prog_name='indiebridge')"
)


def conv_cli(blog: Blog, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CLI, *args, "--site", str(blog.root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def page(blog: Blog, slug: str) -> str:
    return blog.html(f"/posts/{slug}/")


def comments(blog: Blog) -> list[dict[str, Any]]:
    return json.loads(conv_cli(blog, "comments", "list", "--json"))


def post_entry(blog: Blog, slug: str) -> dict[str, Any]:
    parsed = mf2py.parse(doc=page(blog, slug), url=f"{blog.base_url}/posts/{slug}/")
    return next(i for i in parsed["items"] if "h-entry" in i["type"])


def test_replies_edits_deletes_likes_and_boosts_show_on_the_page(
    blog: Blog, fedify_peer: FedifyPeer, fedify_peers: Callable[..., FedifyPeer]
) -> None:
    blog.write_post("hello", "A post to talk about.", title="Hello")
    blog.start()
    post_id = f"{blog.base_url}/ap/posts/hello.json"
    post_url = f"{blog.base_url}/posts/hello/"

    fedify_peer.follow(blog.handle)
    fedify_peer.wait_for("Accept", timeout=20)

    # Reply: a comment with the author's name, the content cleaned.
    reply = fedify_peer.reply(
        post_id, "<p>First <b>reply</b><script>alert(1)</script><img src=x onerror=alert(2)></p>"
    )
    blog.wait_until(lambda: "First <b>reply</b>" in page(blog, "hello"), what="reply on page")
    html = page(blog, "hello")
    assert "<script>alert" not in html and "onerror" not in html
    assert "Fedify peer alice" in html
    (entry,) = [c for c in comments(blog) if c["protocol"] == "activitypub"]
    assert (entry["type"], entry["status"], entry["source"]) == (
        "reply",
        "approved",
        reply["noteId"],
    )
    assert entry["author"]["handle"] == fedify_peer.handle

    # A reply to the reply, from a second server, nests under it.
    bob = fedify_peers(user="bob")
    bob.reply(reply["noteId"], "<p>Nested answer</p>", mention=blog.handle)
    blog.wait_until(lambda: "Nested answer" in page(blog, "hello"), what="nested reply")
    (top,) = post_entry(blog, "hello")["properties"]["comment"]
    assert "Nested answer" in json.dumps(top) and "First" in json.dumps(top)

    # Edit.
    fedify_peer.edit(reply["noteId"], "<p>Edited reply</p>")
    blog.wait_until(lambda: "Edited reply" in page(blog, "hello"), what="edit on page")
    assert "First <b>reply</b>" not in page(blog, "hello")

    # Like and boost, then undo both.
    fedify_peer.like(post_id)
    blog.wait_until(lambda: "<h3>1 like</h3>" in page(blog, "hello"), what="like on page")
    fedify_peer.announce(post_id)
    blog.wait_until(lambda: "<h3>1 boost</h3>" in page(blog, "hello"), what="boost on page")
    props = post_entry(blog, "hello")["properties"]
    assert len(props["like"]) == 1 and len(props["repost"]) == 1
    fedify_peer.unlike(post_id)
    blog.wait_until(lambda: "like</h3>" not in page(blog, "hello"), what="like undone")
    fedify_peer.unannounce(post_id)
    blog.wait_until(lambda: "boost</h3>" not in page(blog, "hello"), what="boost undone")

    # Delete: the reply leaves the page; the answer to it stays, now at the top level.
    fedify_peer.delete(reply["noteId"])
    blog.wait_until(lambda: "Edited reply" not in page(blog, "hello"), what="reply deleted")
    assert all(c["source"] != reply["noteId"] for c in comments(blog))
    assert "Nested answer" in page(blog, "hello")
    assert post_url in page(blog, "hello")


def test_manual_policy_holds_replies_until_approved(blog: Blog, fedify_peer: FedifyPeer) -> None:
    blog.write_site('comments_policy = "manual"\n')
    blog.write_post("held", "Moderated post.", title="Held")
    blog.start()
    fedify_peer.reply(f"{blog.base_url}/ap/posts/held.json", "<p>Waiting room</p>")
    pending = blog.wait_until(
        lambda: [c for c in comments(blog) if c["status"] == "pending"], what="pending comment"
    )
    assert "Waiting room" not in page(blog, "held")
    conv_cli(blog, "comments", "approve", pending[0]["id"], "--build")
    assert "Waiting room" in page(blog, "held")
