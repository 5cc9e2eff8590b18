"""Custom emoji from strangers (``bridge.conversations.emoji``): what a hostile ``Emoji`` tag
or image server can make the blog fetch, store and show.

The images are fetched by the production ``SafeFetcher`` over real loopback HTTP (the test
host ``public.test`` is mapped to 127.0.0.1 by the fake resolver; every other address is
checked as in production, and a spy backend records each connection).  A refused image
leaves its shortcode as text and never fails the comment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.config import SiteConfig
from bridge.conversations import emoji
from bridge.federation.context import Context
from bridge.site import build as site_mod
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor
from tests.conversations.test_emoji import GIF, SVG, png
from tests.security.conftest import POST_SLUG, SpyBackend, context_with_fetcher, guarded_fetcher
from tests.security.test_fetch_hostility import BLOCKED, blocked_targets
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = [pytest.mark.anyio, pytest.mark.category("fetch")]

SLACK = 3.0  # seconds a bounded case may take beyond its limit on a loaded machine


@pytest.fixture
async def ectx(hostile_site: SiteConfig, spy: SpyBackend) -> AsyncIterator[Context]:
    """The fetcher's own limit is the default 1 MiB: the emoji cap must be the one that acts."""
    ctx = context_with_fetcher(hostile_site, guarded_fetcher(spy))
    yield ctx
    await ctx.fetcher.aclose()
    ctx.db.close()


def reply(tags: list[dict[str, Any]], text: str) -> dict[str, Any]:
    return {"id": "https://public.test/notes/1", "type": "Note", "content": text, "tag": tags}


def tag(name: str, url: Any) -> dict[str, Any]:
    return {"type": "Emoji", "name": f":{name}:", "icon": {"type": "Image", "url": url}}


def stored(ctx: Context) -> list[str]:
    folder = emoji.emoji_dir(ctx.config.site_dir)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_svg_is_never_stored_whatever_its_header(ectx: Context, web: WebServer) -> None:
    web.route("/e/evil.png", body=SVG, content_type="image/png")
    web.route("/e/evil.svg", body=SVG, content_type="image/svg+xml")
    obj = reply(
        [
            tag("a", web.url("/e/evil.png", "public.test")),
            tag("b", web.url("/e/evil.svg", "public.test")),
        ],
        "<p>:a: :b:</p>",
    )
    assert await emoji.with_emoji(ectx, obj, "<p>:a: :b:</p>") == "<p>:a: :b:</p>"
    assert stored(ectx) == []
    assert len(web.requests_to("/e/evil.png")) == len(web.requests_to("/e/evil.svg")) == 1


def endless_png(ex: Exchange) -> None:
    """A PNG with no Content-Length that never ends."""
    ex.start(200, {"Content-Type": "image/png"})
    ex.write(png())
    while ex.write(b"\0" * 16384) and ex.sleep(0.01):
        pass


async def test_images_over_256_kib_are_refused_while_streaming(
    ectx: Context, web: WebServer
) -> None:
    big = png(pad=emoji.MAX_BYTES)  # declared: Content-Length over the cap
    web.route("/e/big.png", body=big, content_type="image/png")
    web.route("/e/endless.png", handler=endless_png)
    web.route("/e/small.png", body=png(), content_type="image/png")
    obj = reply(
        [
            tag("big", web.url("/e/big.png", "public.test")),
            tag("endless", web.url("/e/endless.png", "public.test")),
            tag("small", web.url("/e/small.png", "public.test")),
        ],
        "",
    )
    started = time.monotonic()
    out = await emoji.with_emoji(ectx, obj, "<p>:big: :endless: :small:</p>")
    assert time.monotonic() - started < 2.0 + SLACK
    assert out.startswith('<p>:big: :endless: <img class="emoji"')
    assert len(stored(ectx)) == 1


@pytest.mark.parametrize("target", BLOCKED)
async def test_redirects_to_private_addresses_are_refused(
    ectx: Context, web: WebServer, spy: SpyBackend, target: str
) -> None:
    web.route("/e/hop.png", status=302, headers={"Location": blocked_targets(web)[target]})
    obj = reply([tag("x", web.url("/e/hop.png", "public.test"))], "")
    assert await emoji.with_emoji(ectx, obj, "<p>:x:</p>") == "<p>:x:</p>"
    assert spy.connects == [("127.0.0.1", web.port)]  # only the first, allowed hop
    assert stored(ectx) == []


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "file:///etc/passwd",
        "ftp://public.test/x.png",
        "/relative/x.png",
        "http://10.0.0.1/x.png",
        "http://127.0.0.1/x.png",
        {"url": "https://public.test/x.png"},
        None,
    ],
)
async def test_icon_urls_that_are_not_public_http_are_never_fetched(
    ectx: Context, spy: SpyBackend, url: Any
) -> None:
    obj = reply([tag("x", url)], "")
    assert await emoji.with_emoji(ectx, obj, "<p>:x:</p>") == "<p>:x:</p>"
    assert spy.connects == []


async def test_a_thousand_emoji_tags_cost_a_bounded_number_of_fetches(
    ectx: Context, web: WebServer
) -> None:
    web.route("/e/one.gif", body=GIF, content_type="image/gif")
    url = web.url("/e/one.gif", "public.test")
    names = [f"e{i}" for i in range(1000)]
    text = "<p>" + " ".join(f":{n}:" for n in names) + "</p>"
    obj = reply([tag(n, url) for n in names], text)
    started = time.monotonic()
    out = await emoji.with_emoji(ectx, obj, text)
    assert time.monotonic() - started < emoji.FETCH_BUDGET
    # Only the first MAX_TAGS_READ tags are read, and MAX_PER_COMMENT of them fetched.
    assert len(web.requests_to("/e/one.gif")) == emoji.MAX_PER_COMMENT
    assert out.count('<img class="emoji"') == emoji.MAX_PER_COMMENT
    assert f":e{emoji.MAX_PER_COMMENT}:" in out  # the rest stays text
    assert stored(ectx) == [emoji.store_image(emoji.emoji_dir(ectx.config.site_dir), GIF)]


async def test_a_shortcode_in_an_attribute_is_left_alone(ectx: Context, web: WebServer) -> None:
    web.route("/e/x.png", body=png(), content_type="image/png")
    obj = reply([tag("x", web.url("/e/x.png", "public.test"))], "")
    content = '<p><a href="https://public.test/:x:/" rel="nofollow ugc noopener">see</a></p>'
    assert await emoji.with_emoji(ectx, obj, content) == content
    assert web.requests_to("/e/x.png") == []  # not in the text: nothing fetched


# ---- what the theme shows from a comment file ----------------------------------------------


HOSTILE_IMAGES = [
    '<img src="https://tracker.example/pixel.png" alt=":a:">',
    '<img class="emoji" src="https://tracker.example/x.png" alt=":b:">',
    '<img class="emoji" src="/static/emoji/../../ap/actor.json" alt=":c:">',
    '<img class="emoji" src="/static/emoji/' + "a" * 64 + '.svg" alt=":d:">',
    '<img class="emoji" src="//tracker.example/static/emoji/' + "a" * 64 + '.png" alt=":e:">',
    '<img class="emoji" src="javascript:alert(1)" alt=":f:">',
    '<img class="emoji" src="/static/emoji/' + "a" * 64 + '.png" alt="x" onerror="alert(1)">',
    '<img class="emoji big" src="/static/emoji/' + "a" * 64 + '.png" alt=":h:">',
    '<img class="emoji" srcset="https://tracker.example/x.png 2x" alt=":i:">',
]


@pytest.mark.category("render")
def test_the_theme_shows_no_image_but_a_stored_emoji(hostile_site: SiteConfig) -> None:
    ours = '<img class="emoji" src="/static/emoji/' + "b" * 64 + '.png" alt=":ok:" title=":ok:">'
    content = "<p>" + "".join(HOSTILE_IMAGES) + ours + "</p>"
    comment = Comment(
        id=comment_id("activitypub", "https://public.test/notes/9"),
        type="reply",
        protocol="activitypub",
        source="https://public.test/notes/9",
        target=f"{hostile_site.base_url}/posts/{POST_SLUG}/",
        author=CommentAuthor("Eve", "https://public.test/@eve"),
        content=content,
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        object_id="https://public.test/notes/9",
    )
    CommentStore(hostile_site.content_dir).write(POST_SLUG, comment)
    site_mod.build(dataclasses.replace(hostile_site))
    page = (hostile_site.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")
    block = page[page.index(f'id="c-{comment.id}"') :]
    images = re.findall(r"<img\b[^>]*>", block.split("</article>", 1)[0])
    assert [i for i in images if "avatar" not in i] == [ours]
    assert "tracker.example" not in page and "onerror" not in page and "srcset" not in page
    # Refused images leave their shortcode as text, never a bare <img>.
    assert all(f":{c}:" in block for c in "bcdefi")
