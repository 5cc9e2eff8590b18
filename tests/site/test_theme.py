"""The default theme renders what strangers send as valid HTML, and the blog's own pages:
comment timestamps with at most 3 fraction digits, no `<a>` without `href`, reaction counts
in the singular and plural, facepile links named by the person, threaded reply cards, the
menu built from pages, a themed 404 page and the author card on home and About only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import html5lib
import pytest

from bridge import config as config_mod
from bridge.site import build as site_mod

POST = "first-article"


def has_class(element: Any, name: str) -> bool:
    return name in (element.get("class") or "").split()


def accessible_text(element: Any) -> str:
    """Text a screen reader announces: without aria-hidden parts, with images' alt."""
    if element.get("aria-hidden") == "true":
        return (element.tail or "").strip()
    parts = [element.text or "", element.get("alt") or ""]
    parts += [accessible_text(child) for child in element]
    return "".join(parts).strip()


def comment(
    site: Path, ident: str, kind: str, *, url: str = "", source: str = "", **extra: str
) -> None:
    folder = site / "content" / "comments" / POST
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "author": {
            "handle": "",
            "name": extra.pop("name", f"Person {ident}"),
            "photo": "",
            "url": url,
        },
        "content": extra.pop("content", ""),
        "id": ident,
        "in_reply_to": extra.pop("in_reply_to", ""),
        "object_id": "",
        "protocol": "activitypub",
        # Mastodon and others send microseconds; the file keeps what came.
        "published": "2026-01-12T10:11:12.123456+00:00",
        "source": source,
        "status": "approved",
        "target": f"https://blog.example/posts/{POST}/",
        "type": kind,
        "updated": None,
    }
    (folder / f"{ident}.json").write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def strangers(site: Path) -> str:
    """A post with a comment of every kind, some from people who gave no URL at all."""
    comment(site, "d00000000000000000l1", "like", url="https://a.example/@ann", name="Ann")
    comment(site, "d00000000000000000r1", "repost", name="Rui")  # no URL, no source
    comment(site, "d00000000000000000r2", "repost", url="https://b.example/@bo", name="Bo")
    comment(site, "d00000000000000000b1", "bookmark", url="javascript:alert(1)", name="Cy")
    comment(site, "d00000000000000000m1", "mention", source="https://c.example/post", name="Di")
    comment(site, "d00000000000000000u1", "quote", name="Ivy")  # a quote with no URLs
    comment(
        site,
        "d00000000000000000p1",
        "reply",
        content="<p>Top</p>",
        name="Eve",
        source="https://e.example/@eve/1",
    )
    comment(
        site,
        "d00000000000000000p2",
        "reply",
        content="<p>Nested</p>",
        name="Fay",
        url="https://f.example/@fay",
        source="https://f.example/@fay/2",
        in_reply_to="https://e.example/@eve/1",
    )
    site_mod.build(config_mod.load(site))
    return (site / "public" / "posts" / POST / "index.html").read_text(encoding="utf-8")


def test_comment_times_keep_at_most_three_fraction_digits(strangers: str) -> None:
    times = re.findall(r'datetime="([^"]+)"', strangers)
    assert "2026-01-12T10:11:12.123+00:00" in times
    assert not [t for t in times if re.search(r"\.\d{4,}", t)], times


def test_no_link_without_a_url(strangers: str) -> None:
    anchors = re.findall(r"<a\b[^>]*>", strangers)
    assert anchors
    assert [a for a in anchors if 'href="' not in a or 'href=""' in a] == []
    assert "javascript:" not in strangers
    assert '<span class="p-author h-card" title="Rui">' in strangers
    assert '<bdi class="p-name">Ivy</bdi></span> quoted this post' in strangers


def test_reaction_counts_say_singular_and_plural(strangers: str) -> None:
    headings = re.findall(r"<h3>([^<]+)</h3>", strangers)
    assert headings == ["1 like", "2 boosts", "1 bookmark", "Quoted by", "1 mention"]


def test_facepile_links_are_named_by_the_person(strangers: str) -> None:
    doc = html5lib.parse(strangers, namespaceHTMLElements=False)
    links = doc.findall(".//ul[@class='facepile']//a")
    assert {a.get("href") for a in links} == {"https://a.example/@ann", "https://b.example/@bo"}
    for a in links:
        assert accessible_text(a) in ("Ann", "Bo")  # the link is named by the person


def test_replies_are_threaded_cards(strangers: str) -> None:
    doc = html5lib.parse(strangers, namespaceHTMLElements=False)
    cards = doc.findall(".//article[@class='p-comment h-entry comment']")
    names = ["".join(e.itertext()) for c in cards for e in c.iter() if has_class(e, "p-name")]
    assert "Eve" in names and "Fay" in names
    eve = next(c for c in cards if c.get("id") == "c-d00000000000000000p1")
    [fay] = [c for c in eve.iter("article") if c.get("id") == "c-d00000000000000000p2"]
    # Fay's reply is nested in Eve's card, and its date links to the reply itself.
    assert fay.find(".//a[@class='u-url small permalink']").get("href") == (
        "https://f.example/@fay/2"
    )
    assert eve.find("header//bdi[@class='p-name']") is not None  # Eve gave no profile URL


def test_the_page_with_strangers_comments_is_strict_html5(strangers: str) -> None:
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(strangers)


def test_menu_lists_pages_marked_for_it(make_site) -> None:
    site = make_site()
    pages = site / "content" / "pages"
    (pages / "colophon.md").write_text("---\ntitle: Colophon\nmenu: true\nweight: 5\n---\nx\n")
    (pages / "zines.md").write_text("---\ntitle: Zines\nmenu: true\n---\nx\n")
    (pages / "hidden.md").write_text("---\ntitle: Hidden\n---\nx\n")
    site_mod.build(config_mod.load(site))
    home = (site / "public" / "index.html").read_text(encoding="utf-8")
    nav = re.search(r'<nav aria-label="Site">(.*?)</nav>', home, re.S)
    assert nav is not None
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav.group(1))
    assert links == [
        ("https://blog.example/archive/", "Archive"),
        ("https://blog.example/zines/", "Zines"),  # weight 0 comes before 5
        ("https://blog.example/colophon/", "Colophon"),
        ("https://blog.example/feed.xml", "Feed"),
    ]


def test_a_themed_404_page(site: Path) -> None:
    site_mod.build(config_mod.load(site))
    page = (site / "public" / "404.html").read_text(encoding="utf-8")
    assert "<h1>Page not found</h1>" in page
    assert '<link rel="stylesheet" href="https://blog.example/static/style.css">' in page
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def test_the_author_card_shows_on_home_and_about_only(make_site) -> None:
    site = make_site()
    about = site / "content" / "pages" / "about.md"
    about.write_text("---\ntitle: About\nauthor_card: true\n---\nHi.\n", encoding="utf-8")
    site_mod.build(config_mod.load(site))
    out = site / "public"

    def visible_cards(rel: str) -> int:
        doc = html5lib.parse((out / rel).read_text(encoding="utf-8"), namespaceHTMLElements=False)
        hidden = {id(e) for h in doc.iter() if h.get("hidden") is not None for e in h.iter()}
        hidden |= {
            id(e)
            for h in doc.iter()
            if "visually-hidden" in (h.get("class") or "")
            for e in h.iter()
        }
        return sum(
            1 for e in doc.iter() if "author-card" in (e.get("class") or "") and id(e) not in hidden
        )

    assert visible_cards("index.html") == 1
    assert visible_cards("about/index.html") == 1
    assert visible_cards(f"posts/{POST}/index.html") == 0
    # Still there for microformats readers: the post's h-entry names its author.
    assert 'class="p-author h-card author-card"' in (out / f"posts/{POST}/index.html").read_text()


def test_a_reply_without_a_url_is_nobodys_parent(site: Path) -> None:
    # Two replies that name no source: each is shown once, at the top level (an empty
    # source once made every top-level reply the child of each, twenty levels deep).
    comment(site, "d00000000000000000q1", "reply", content="<p>One</p>", name="Gus")
    comment(site, "d00000000000000000q2", "reply", content="<p>Two</p>", name="Hal")
    site_mod.build(config_mod.load(site))
    page = (site / "public" / "posts" / POST / "index.html").read_text(encoding="utf-8")
    assert page.count('id="c-d00000000000000000q1"') == 1
    assert page.count('id="c-d00000000000000000q2"') == 1
    assert page.count('<article class="p-comment h-entry comment"') == 3  # with the fixture's
