"""A reply with a custom emoji, through a running daemon, over loopback HTTP only.

`indiebridge serve` runs as a subprocess; a second local HTTP server plays Alice's server:
it serves her actor (with the key that signs the Create) and the emoji image.  The daemon
verifies the signed Create, fetches the image through its SafeFetcher, stores it and
rebuilds; the post page then shows the image from the blog's own address, byte for byte the
image Alice's server served, and never names her server's copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.federation.signatures import sign_request
from tests.conversations.test_emoji import png
from tests.e2e.blog import Blog, blog  # noqa: F401 - the `blog` fixture
from tests.security.conftest import actor_doc
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def test_a_reply_with_a_custom_emoji_shows_the_blogs_copy(
    blog: Blog,  # noqa: F811
    web: WebServer,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alice = web.url("/users/alice")
    image = png(3, 2)
    web.route(
        "/users/alice",
        body=json.dumps(actor_doc(alice, key)),
        content_type="application/activity+json",
    )
    web.route("/emoji/blobcat.png", body=image, content_type="image/png")
    blog.write_post("hello", "Hello, fediverse.")
    blog.start()

    note = {
        "id": alice + "/statuses/1",
        "type": "Note",
        "attributedTo": alice,
        "inReplyTo": f"{blog.base_url}/ap/posts/hello.json",
        "content": "<p>Lovely post :blobcat:</p>",
        "published": "2026-02-01T10:00:00Z",
        "to": [PUBLIC],
        "cc": [alice + "/followers"],
        "tag": [
            {
                "id": web.url("/emojis/blobcat"),
                "type": "Emoji",
                "name": ":blobcat:",
                "icon": {
                    "type": "Image",
                    "mediaType": "image/png",
                    "url": web.url("/emoji/blobcat.png"),
                },
            }
        ],
    }
    create = {"id": note["id"] + "/activity", "type": "Create", "actor": alice, "object": note}
    request = httpx.Request(
        "POST",
        blog.base_url + "/inbox",
        content=json.dumps(create).encode(),
        headers={"Content-Type": "application/activity+json"},
    )
    sign_request(request, key, alice + "#main-key", "cavage", dt.datetime.now(dt.UTC))
    with httpx.Client(timeout=10) as client:
        assert client.send(request).status_code == 202

    name = hashlib.sha256(image).hexdigest() + ".png"

    def page_with_emoji() -> str:
        html = blog.html("/posts/hello/")
        return html if name in html else ""

    page = blog.wait_until(page_with_emoji, what="the reply with its emoji")
    img = re.search(r'<img class="emoji"[^>]*>', page)
    assert img is not None
    assert img.group(0) == (
        f'<img class="emoji" src="/static/emoji/{name}" alt=":blobcat:" title=":blobcat:">'
    )
    served = blog.get(f"/static/emoji/{name}")
    assert served.status_code == 200 and served.content == image
    assert web.url("/emoji/") not in page
    assert len(web.requests_to("/emoji/blobcat.png")) == 1
