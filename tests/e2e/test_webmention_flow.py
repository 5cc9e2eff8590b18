"""End to end: Webmention between a running blog daemon and real HTML pages served on
loopback — sending on publish, receiving (reply, edit, link removed, 410), Salmention."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.blog import Blog
from tests.e2e.test_conversations_fedify import conv_cli, page
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.slow


def receiver(web: WebServer, path: str) -> None:
    web.route(path, headers={"Link": f"<{path}/webmention>; rel=webmention"}, body="<p>t</p>")

    def endpoint(ex: Exchange) -> None:
        ex.send(202, {}, b"queued")

    web.route(f"{path}/webmention", handler=endpoint, methods=["POST"])


def sent_to(web: WebServer, path: str) -> list[dict[str, list[str]]]:
    return [r.form for r in web.requests_to(f"{path}/webmention")]


def reply_page(target: str, text: str) -> str:
    return (
        '<!doctype html><html><body><article class="h-entry">'
        '<a class="p-author h-card" href="/">Wendy Web</a>'
        f'<a class="u-in-reply-to" href="{target}">in reply to</a>'
        f'<div class="e-content"><p>{text}</p></div></article></body></html>'
    )


def test_webmentions_sent_received_updated_removed_and_salmention(
    blog: Blog, web: WebServer
) -> None:
    receiver(web, "/upstream")
    receiver(web, "/linked")
    blog.write_post(
        "hello",
        f"Answering, and see [this]({web.url('/linked')}).",
        title=None,
        in_reply_to=web.url("/upstream"),
    )
    blog.start()
    post_url = f"{blog.base_url}/posts/hello/"

    # Publishing sends webmentions to what the post replies to and links.
    blog.cli("publish")
    assert sent_to(web, "/upstream") == [{"source": [post_url], "target": [web.url("/upstream")]}]
    assert sent_to(web, "/linked") == [{"source": [post_url], "target": [web.url("/linked")]}]
    sent = json.loads(conv_cli(blog, "webmentions", "--json"))
    assert {(s["target"], s["ok"]) for s in sent} >= {
        (web.url("/upstream"), True),
        (web.url("/linked"), True),
    }

    # The endpoint refuses what is not a webmention for one of our posts.
    endpoint = f"{blog.base_url}/webmention"
    for form in (
        {"source": web.url("/reply")},
        {"source": "ftp://x.example/", "target": post_url},
        {"source": web.url("/reply"), "target": "https://elsewhere.example/"},
        {"source": post_url, "target": post_url},
    ):
        assert httpx.post(endpoint, data=form, timeout=10).status_code == 400

    # A reply arrives: verified, shown, and a Salmention goes upstream.
    web.route("/reply", body=reply_page(post_url, "Lovely reply"))
    answer = httpx.post(endpoint, data={"source": web.url("/reply"), "target": post_url})
    assert answer.status_code == 202 and "location" not in answer.headers
    blog.wait_until(lambda: "Lovely reply" in page(blog, "hello"), what="webmention reply")
    assert "Wendy Web" in page(blog, "hello")
    blog.wait_until(lambda: len(sent_to(web, "/upstream")) >= 2, what="salmention upstream")
    assert sent_to(web, "/upstream")[-1] == {"source": [post_url], "target": [web.url("/upstream")]}

    # Edited and re-sent: updated in place.
    web.route("/reply", body=reply_page(post_url, "Edited reply"))
    httpx.post(endpoint, data={"source": web.url("/reply"), "target": post_url})
    blog.wait_until(lambda: "Edited reply" in page(blog, "hello"), what="updated reply")
    assert "Lovely reply" not in page(blog, "hello")
    (mention,) = [c for c in json.loads(conv_cli(blog, "comments", "list", "--json"))]
    assert (mention["protocol"], mention["type"]) == ("webmention", "reply")

    # The link is removed: the reply goes.
    web.route("/reply", body="<p>I changed my mind.</p>")
    httpx.post(endpoint, data={"source": web.url("/reply"), "target": post_url})
    blog.wait_until(lambda: "Edited reply" not in page(blog, "hello"), what="reply removed")

    # Back again, then deleted (410): it goes again.
    web.route("/reply", body=reply_page(post_url, "Third time"))
    httpx.post(endpoint, data={"source": web.url("/reply"), "target": post_url})
    blog.wait_until(lambda: "Third time" in page(blog, "hello"), what="reply back")
    web.route("/reply", status=410, body="<p>gone</p>")
    httpx.post(endpoint, data={"source": web.url("/reply"), "target": post_url})
    blog.wait_until(lambda: "Third time" not in page(blog, "hello"), what="reply gone")
