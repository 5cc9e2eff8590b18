"""Link previews: OpenGraph and Twitter-card tags, read back from built pages with
BeautifulSoup.  The facts checked are listed in ``bridge/site/opengraph.py`` (ogp.me, the
X cards markup reference, Mastodon's ``LinkDetailsExtractor``)."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from bridge.site import opengraph
from bridge.site.build import BuildResult
from bridge.site.image_size import size_of_bytes
from tests.conftest import Built

Build = Callable[..., BuildResult]


def meta(html: str) -> dict[str, list[str]]:
    """{property or name: [content, ...]} of every <meta> in <head>, in document order."""
    soup = BeautifulSoup(html, "html.parser")
    out: dict[str, list[str]] = {}
    assert soup.head is not None
    for tag in soup.head.find_all("meta"):
        key = tag.get("property") or tag.get("name")
        if key:
            out.setdefault(str(key), []).append(str(tag.get("content")))
    return out


def test_article_page_has_every_preview_tag(built: Built) -> None:
    m = meta(built.text("posts/first-article/index.html"))
    assert m["og:type"] == ["article"]
    assert m["og:title"] == ["The first article"]
    assert m["og:url"] == ["https://blog.example/posts/first-article/"]
    assert m["og:description"] == ["An article with a picture, two tags and an edit."]
    assert m["og:site_name"] == ["Test Tides"]
    assert m["og:image"] == ["https://blog.example/static/images/pool.png"]
    # The size is read from the PNG itself (8 x 4 pixels in the test site).
    assert (m["og:image:width"], m["og:image:height"]) == (["8"], ["4"])
    assert m["og:image:alt"] == ["A small blue rectangle standing in for a tide pool."]
    assert m["article:published_time"] == ["2026-01-10T08:30:00Z"]
    assert m["article:modified_time"] == ["2026-01-11T09:00:00Z"]
    assert m["article:tag"] == ["python", "IndieWeb"]
    assert m["twitter:card"] == ["summary_large_image"]
    assert m["twitter:image:alt"] == m["og:image:alt"]
    assert m["fediverse:creator"] == ["@tester@blog.example"]


def test_note_description_is_its_first_words_and_has_no_image(built: Built) -> None:
    m = meta(built.text("posts/quick-note/index.html"))
    assert m["og:type"] == ["article"]
    assert m["og:description"] == ["A short note without a title. #notes"]
    assert "og:image" not in m and m["twitter:card"] == ["summary"]
    assert m["article:tag"] == ["notes"]


def test_content_warning_post_previews_the_warning_not_the_text(built: Built) -> None:
    m = meta(built.text("posts/spoilers/index.html"))
    body = BeautifulSoup(built.text("posts/spoilers/index.html"), "html.parser")
    warning = body.select_one("details.cw summary")
    assert warning is not None
    assert m["og:description"][0] in warning.get_text()


@pytest.mark.parametrize("rel", ["index.html", "archive/index.html", "tags/python/index.html"])
def test_other_pages_are_websites(built: Built, rel: str) -> None:
    m = meta(built.text(rel))
    assert m["og:type"] == ["website"]
    assert "article:published_time" not in m
    canonical = BeautifulSoup(built.text(rel), "html.parser").find("link", rel="canonical")
    assert canonical is not None and m["og:url"] == [canonical["href"]]


def test_default_image_setting_applies_to_pages_without_an_image(
    make_site: Callable[..., Path], build_site: Build
) -> None:
    site = make_site(
        {
            "og_image": "static/card.png",
            "og_image_alt": 'Tide "pools" & <rocks>',
            "og_image_width": 1200,
            "og_image_height": 600,
        }
    )
    out = build_site(site).out_dir
    home = meta((out / "index.html").read_text("utf-8"))
    assert home["og:image"] == ["https://blog.example/static/card.png"]
    assert (home["og:image:width"], home["og:image:height"]) == (["1200"], ["600"])
    assert home["og:image:alt"] == ['Tide "pools" & <rocks>']
    # A post with its own image keeps it.
    post = meta((out / "posts/first-article/index.html").read_text("utf-8"))
    assert post["og:image"] == ["https://blog.example/static/images/pool.png"]


def test_values_are_escaped(site: Path, build_site: Build) -> None:
    title = 'Quotes " and <script>alert(1)</script> & more'
    (site / "content/posts/2026-01-13-escape.md").write_text(
        f"---\ntitle: '{title}'\ndate: 2026-01-13T08:00:00Z\ntags: ['a\"b']\n"
        "summary: \"<b>bold</b> 'single'\"\n---\nText.\n",
        "utf-8",
    )
    html = (build_site(site).out_dir / "posts/escape/index.html").read_text("utf-8")
    head = html.split("</head>")[0]
    assert "<script>alert" not in head and "<b>bold" not in head
    m = meta(html)
    assert m["og:title"] == [title]
    assert m["og:description"] == ["<b>bold</b> 'single'"]
    assert m["article:tag"] == ['a"b']


def test_first_body_image_is_used_when_no_images_are_listed(site: Path, build_site: Build) -> None:
    (site / "content/posts/2026-01-13-pic.md").write_text(
        "---\ntitle: Pic\ndate: 2026-01-13T08:00:00Z\n---\n"
        "![A gull](/static/images/pool.png) and ![second](https://elsewhere.example/x.png)\n",
        "utf-8",
    )
    m = meta((build_site(site).out_dir / "posts/pic/index.html").read_text("utf-8"))
    assert m["og:image"] == ["https://blog.example/static/images/pool.png"]
    assert m["og:image:alt"] == ["A gull"]
    assert m["og:image:width"] == ["8"]


def test_remote_images_have_no_size(site: Path, build_site: Build) -> None:
    (site / "content/posts/2026-01-13-far.md").write_text(
        "---\ntitle: Far\ndate: 2026-01-13T08:00:00Z\nimages:\n"
        "  - url: https://elsewhere.example/x.png\n    alt: Far away\n---\nText.\n",
        "utf-8",
    )
    m = meta((build_site(site).out_dir / "posts/far/index.html").read_text("utf-8"))
    assert m["og:image"] == ["https://elsewhere.example/x.png"]
    assert "og:image:width" not in m and "og:image:height" not in m


# ---- image sizes from file headers -------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def _jpeg(width: int, height: int) -> bytes:
    app0 = (
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    )
    dht = b"\xff\xc4" + struct.pack(">H", 5) + b"\x00\x00\x00"  # C4 is not a frame header
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + dht + sof


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (_png(1200, 630), (1200, 630)),
        (b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 4, (320, 200)),
        (_jpeg(1024, 768), (1024, 768)),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8X"
            + b"\x00" * 8
            + (639).to_bytes(3, "little")
            + (479).to_bytes(3, "little"),
            (640, 480),
        ),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"\xff\xd8\x00garbage", None),
        (b"", None),
    ],
)
def test_image_sizes_from_headers(data: bytes, size: tuple[int, int] | None) -> None:
    assert size_of_bytes(data) == size


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ('<p>x</p><img src="/a.png" alt="A">', ("https://blog.example/a.png", "A")),
        ('<IMG SRC="/b.png" ALT="B">', ("https://blog.example/b.png", "B")),
        ('<img src="/c.png" alt="1 > 0, <img">', ("https://blog.example/c.png", "1 > 0, <img")),
        ('<!-- <img src="/no.png"> --><img src="/d.png">', ("https://blog.example/d.png", "")),
        ('<code>&lt;img src="/no.png"&gt;</code><p>none</p>', None),
        ('<img alt="no src"><img src="/e.png" alt="E">', ("https://blog.example/e.png", "E")),
        ("<p>no image at all</p>", None),
    ],
)
def test_first_image_is_the_first_img_element_of_the_body(
    built: Built, body: str, found: tuple[str, str] | None
) -> None:
    """Parsed only up to each ``<img``: the same answer as parsing the whole body."""
    post = dataclasses.replace(built.result.built_posts[0], html=body, images=())
    assert opengraph.first_image(built.config, post) == found
