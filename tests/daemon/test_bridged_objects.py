"""What a bridged entry becomes: images travel as attachments with their alt text, and
hashtags link to the original site's tag pages or to nothing (never to this site)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.daemon import bridged_objects, feedbridge
from bridge.federation.context import Context
from bridge.site.importing import feeds
from tests.daemon import test_feedbridge
from tests.daemon.test_feedbridge import bridge_site, queued
from tests.webserver import WebServer, web_fixture  # noqa: F401 - `web` fixture

pytestmark = pytest.mark.anyio
context_for = test_feedbridge.context_for  # the fixture


def atom(base: str, date: dt.datetime) -> bytes:
    stamp = date.strftime("%Y-%m-%dT%H:%M:%SZ")
    content = (
        '<p>A cat.</p><img src="/img/cat.png" alt=" A cat,\n asleep ">'
        '<img src="https://stats.example/p.gif" width="1" height="1" alt="">'
        '<p><img src="/img/cat.png" alt="the same cat again"></p>'
        '<img src="data:image/png;base64,AAAA" alt="inline data">'
        '<img src="/img/dog.JPG?w=600">'
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Elsewhere</title>
<link href="{base}/"/><id>{base}/</id><updated>{stamp}</updated>
<entry><title>Cats</title><link href="{base}/blog/cats/"/><id>{base}/blog/cats/</id>
<published>{stamp}</published><updated>{stamp}</updated>
<category term="python" scheme="{base}/tags/"/>
<category term="Uncategorized" scheme="{base}"/>
<category term="1986"/>
<content type="html"><![CDATA[{content}]]></content></entry></feed>""".encode()


async def test_images_are_attachments_and_hashtags_link_to_the_original_site(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    base = web.url("").rstrip("/")
    date = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    web.route("/atom.xml", body=atom(base, date), content_type="application/atom+xml")
    ctx = context_for(bridge_site(make_site, web.url("/atom.xml")))
    report = await feedbridge.poll_once(ctx)
    assert report.errors == [] and report.created == ["cats"]
    obj = queued(ctx)[0]["object"]
    assert obj["attachment"] == [
        {
            "type": "Image",
            "mediaType": "image/png",
            "url": f"{base}/img/cat.png",
            "name": "A cat, asleep",
        },
        {
            "type": "Image",
            "mediaType": "image/jpeg",
            "url": f"{base}/img/dog.JPG?w=600",
            "name": "",
        },
    ]
    assert f'src="{base}/img/cat.png"' in obj["content"]  # still inline for other servers
    assert obj["tag"] == [
        {"type": "Hashtag", "name": "#python", "href": f"{base}/tags/python"},
        {"type": "Hashtag", "name": "#Uncategorized"},
    ]
    assert ctx.config.base_url not in str(obj["tag"])


async def test_rss_categories_link_only_where_a_domain_names_a_tag_folder(
    make_site: Callable[..., Path], web: WebServer, context_for: Callable[[Path], Context]
) -> None:
    """Pelican and Hugo write ``<category>`` without a domain: no tag page is known."""
    base = web.url("").rstrip("/")
    date = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S")
    web.route(
        "/rss.xml",
        content_type="application/rss+xml",
        body=(
            '<?xml version="1.0"?><rss version="2.0"><channel><title>E</title>'
            f"<link>{base}/</link><item><title>One</title><link>{base}/one/</link>"
            f"<pubDate>{date} +0000</pubDate><category>python</category>"
            f'<category domain="{base}/category/">Web Dev</category>'
            "<description>&lt;p&gt;No images.&lt;/p&gt;</description></item></channel></rss>"
        ),
    )
    ctx = context_for(bridge_site(make_site, web.url("/rss.xml")))
    assert (await feedbridge.poll_once(ctx)).created == ["one"]
    obj = queued(ctx)[0]["object"]
    assert obj["tag"] == [
        {"type": "Hashtag", "name": "#python"},
        {"type": "Hashtag", "name": "#WebDev", "href": f"{base}/category/Web%20Dev"},
    ]
    assert obj["attachment"] == []


@pytest.mark.parametrize(
    ("scheme", "term", "page"),
    [
        ("https://old.example/tags/", "python", "https://old.example/tags/python"),
        ("https://old.example/tag/", "C++ & Rust", "https://old.example/tag/C%2B%2B%20%26%20Rust"),
        ("https://old.example", "python", None),  # WordPress's Atom feed: the home URL
        ("https://old.example/", "python", None),
        ("http://www.blogger.com/atom/ns#", "python", None),  # a namespace, not a page
        ("urn:tags:", "python", None),
        ("https://old.example/tags/?t=", "python", None),
        (None, "python", None),
        ("https://old.example/tags/", " ", None),
    ],
)
def test_a_tag_page_comes_only_from_a_tag_folder(
    scheme: str | None, term: str, page: str | None
) -> None:
    assert feeds.tag_page(scheme, term) == page


def test_images_are_bounded() -> None:
    many = "".join(f'<img src="https://old.example/{i}.gif" alt="{"x" * 2000}">' for i in range(40))
    images = bridged_objects.entry_images(many)
    assert len(images) == bridged_objects.MAX_IMAGES
    assert {len(i.alt) for i in images} == {bridged_objects.MAX_ALT}
    assert images[0].media_type == "image/gif"
