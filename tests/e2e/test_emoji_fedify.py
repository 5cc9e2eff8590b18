"""End to end: a Fedify server replies with a custom emoji (Fedify's own ``Emoji`` vocabulary,
``toot:Emoji``, signed and sent by Fedify); the running blog shows the image from its own
address, stored once, and never names the remote copy."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.conversations.test_emoji import GIF
from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.slow


def test_a_fedify_reply_with_a_custom_emoji(
    blog: Blog, fedify_peer: FedifyPeer, web: WebServer
) -> None:
    web.route("/emoji/party.gif", body=GIF, content_type="image/gif")
    blog.write_post("hello", "A post to talk about.", title="Hello")
    blog.start()
    fedify_peer.reply(
        f"{blog.base_url}/ap/posts/hello.json",
        "<p>Party :party_parrot: time</p>",
        emoji=[
            {
                "id": web.url("/emojis/party_parrot"),
                "name": ":party_parrot:",
                "url": web.url("/emoji/party.gif"),
                "mediaType": "image/gif",
            }
        ],
    )
    name = hashlib.sha256(GIF).hexdigest() + ".gif"

    def page() -> str:
        html = blog.html("/posts/hello/")
        return html if name in html else ""

    html = blog.wait_until(page, timeout=30, what="the reply with its emoji")
    assert re.search(
        rf'Party <img class="emoji" src="/static/emoji/{name}" alt=":party_parrot:" '
        rf'title=":party_parrot:"> time',
        html,
    )
    assert blog.get(f"/static/emoji/{name}").content == GIF
    assert web.url("/emoji/") not in html
    assert len(web.requests_to("/emoji/party.gif")) == 1
