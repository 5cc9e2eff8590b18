"""Microformats2 in the built HTML, read the way Webmention receivers read it (mf2py)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import mf2py
import pytest

from tests.conftest import BASE_URL, Built

HOME = BASE_URL + "/"
Item = dict[str, Any]


def parse(built: Built, url: str) -> dict[str, Any]:
    path = built.path_for(url)
    assert path is not None and path.is_file(), url
    return mf2py.parse(doc=path.read_text(encoding="utf-8"), url=url)


def entry(built: Built, slug: str) -> Item:
    parsed = parse(built, f"{BASE_URL}/posts/{slug}/")
    entries = [i for i in parsed["items"] if "h-entry" in i["type"]]
    assert len(entries) == 1, [i["type"] for i in parsed["items"]]
    return entries[0]


def props(item: Item) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = item["properties"]
    return result


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "link":
            self.links.append(values)


def html_links(built: Built, rel: str) -> _Links:
    parser = _Links()
    parser.feed(built.text(rel))
    return parser


# ---- post pages ----------------------------------------------------------------------------


def test_article_h_entry(built: Built) -> None:
    p = props(entry(built, "first-article"))
    url = f"{BASE_URL}/posts/first-article/"
    assert p["name"] == ["The first article"]
    assert p["url"] == [url]
    assert p["uid"] == [url]
    assert p["published"] == ["2026-01-10T09:30:00+0100"]
    assert p["updated"] == ["2026-01-11T10:00:00+0100"]
    assert p["summary"] == ["An article with a picture, two tags and an edit."]
    [content] = p["content"]
    assert "<strong>first</strong>" in content["html"]
    assert content["value"].startswith("This is the first article.")
    assert [c.lstrip("#") for c in p["category"]] == ["python", "IndieWeb"]
    assert p["photo"] == [
        {
            "value": f"{BASE_URL}/static/images/pool.png",
            "alt": "A small blue rectangle standing in for a tide pool.",
        }
    ]
    assert p["syndication"] == [f"{BASE_URL}/ap/posts/first-article.json"]
    assert "in-reply-to" not in p


def test_entry_author_is_an_h_card(built: Built) -> None:
    [author] = props(entry(built, "first-article"))["author"]
    assert author["type"] == ["h-card"]
    card = props(author)
    assert card["name"] == ["Tess Tester"]
    assert [u.rstrip("/") for u in card["url"]] == [BASE_URL]
    assert [p["value"] if isinstance(p, dict) else p for p in card["photo"]] == [
        f"{BASE_URL}/static/avatar.png"
    ]


def test_note_has_no_name(built: Built) -> None:
    p = props(entry(built, "quick-note"))
    assert "name" not in p
    assert p["content"][0]["html"] == (  # the inline #notes is a link to its tag page
        '<p>A short note without a title. <a class="mention hashtag" '
        'href="https://blog.example/tags/notes/" rel="tag">#notes</a></p>'
    )
    assert p["url"] == p["uid"] == [f"{BASE_URL}/posts/quick-note/"]
    assert p["published"] == ["2026-01-12T08:00:00+0000"]
    assert "updated" not in p


def test_reply_has_in_reply_to(built: Built) -> None:
    p = props(entry(built, "a-reply"))
    assert p["in-reply-to"] == ["https://example.org/posts/1"]
    assert "name" not in p


def test_content_warning_keeps_content_in_e_content(built: Built) -> None:
    p = props(entry(built, "spoilers"))
    assert p["name"] == ["The finale"]
    # The warning is inside e-content, so a Webmention receiver shows it before the text.
    assert p["content"][0]["value"] == (
        "Content warning: Spoilers for the finale\nThe lighthouse keeper did it."
    )
    assert p["content"][0]["html"].startswith(
        '<details class="cw"><summary>Content warning: Spoilers for the finale</summary>'
    )


def test_comments_are_nested_in_the_entry(built: Built) -> None:
    p = props(entry(built, "first-article"))
    [comment] = p["comment"]
    c = props(comment)
    assert c["url"] == ["https://social.example/@friend/1"]
    assert c["in-reply-to"] == [f"{BASE_URL}/posts/first-article/"]
    assert c["content"][0]["html"] == "<p>Nice picture!</p>"
    assert props(c["author"][0])["name"] == ["A Friend"]


@pytest.mark.parametrize("slug", ["first-article", "quick-note", "spoilers", "a-reply"])
def test_post_page_links(built: Built, slug: str) -> None:
    url = f"{BASE_URL}/posts/{slug}/"
    parsed = parse(built, url)
    assert parsed["rels"]["webmention"] == [f"{BASE_URL}/webmention"]
    assert parsed["rels"]["canonical"] == [url]
    alternates = {a["type"]: a["url"] for a in parsed["alternates"]}
    assert alternates["application/activity+json"] == f"{BASE_URL}/ap/posts/{slug}.json"
    assert alternates["application/atom+xml"] == f"{BASE_URL}/feed.xml"
    page = html_links(built, f"posts/{slug}/index.html")
    assert "comments" in page.ids
    ap_links = [
        link
        for link in page.links
        if link.get("rel") == "alternate" and link.get("type") == "application/activity+json"
    ]
    assert [link["href"] for link in ap_links] == [f"{BASE_URL}/ap/posts/{slug}.json"]


# ---- home, tag and archive pages -----------------------------------------------------------


def test_home_page_has_an_h_card_and_an_h_feed(built: Built) -> None:
    parsed = parse(built, HOME)
    types = [i["type"] for i in parsed["items"]]
    assert types == [["h-card"], ["h-feed"]]
    card, feed = parsed["items"]
    assert props(card)["name"] == ["Tess Tester"]
    assert props(card)["note"] == ["Writes posts so the tests have something to read."]
    assert props(feed)["name"] == ["Test Tides"]
    assert props(props(feed)["author"][0])["name"] == ["Tess Tester"]
    children = feed["children"]
    assert all(c["type"] == ["h-entry"] for c in children)
    assert [props(c)["uid"] for c in children] == [
        [f"{BASE_URL}/posts/a-reply/"],
        [f"{BASE_URL}/posts/spoilers/"],
    ]
    assert "name" not in props(children[0])  # a note in a list has no name either
    assert props(children[1])["name"] == ["The finale"]
    assert parsed["rels"]["webmention"] == [f"{BASE_URL}/webmention"]
    assert parsed["rels"]["me"] == ["https://old.example/users/tester"]
    alternates = {a["type"]: a["url"] for a in parsed["alternates"]}
    assert alternates["application/activity+json"] == f"{BASE_URL}/ap/actor.json"
    assert parsed["rels"]["next"] == [f"{BASE_URL}/page/2/"]


def test_home_h_card_uid_and_url_are_the_site(built: Built) -> None:
    card = parse(built, HOME)["items"][0]
    p = props(card)
    assert [u.rstrip("/") for u in p["url"]] == [BASE_URL]
    assert p["uid"] == p["url"]


def representative_hcard(parsed: dict[str, Any], page_url: str) -> Item | None:
    """The first h-card whose url and uid are both exactly the page URL (mf2util, php-mf2)."""
    for item in parsed["items"]:
        if "h-card" in item["type"]:
            p = props(item)
            if page_url in p.get("url", []) and page_url in p.get("uid", []):
                return item
    return None


def test_home_page_has_a_representative_h_card(built: Built) -> None:
    assert representative_hcard(parse(built, HOME), HOME) is not None


def test_second_home_page_and_tag_pages_are_feeds(built: Built) -> None:
    page2 = parse(built, f"{BASE_URL}/page/2/")
    [feed] = [i for i in page2["items"] if "h-feed" in i["type"]]
    assert [props(c)["uid"][0] for c in feed["children"]] == [
        f"{BASE_URL}/posts/quick-note/",
        f"{BASE_URL}/posts/first-article/",
    ]
    assert not [i for i in page2["items"] if i["type"] == ["h-card"]]  # only page 1 has it
    tag = parse(built, f"{BASE_URL}/tags/python/")
    [feed] = tag["items"]
    assert feed["type"] == ["h-feed"]
    assert props(feed)["name"] == ["Posts tagged #python"]
    assert [props(c)["uid"][0] for c in feed["children"]] == [
        f"{BASE_URL}/posts/a-reply/",
        f"{BASE_URL}/posts/first-article/",
    ]


def test_archive_lists_every_post(built: Built) -> None:
    [feed] = parse(built, f"{BASE_URL}/archive/")["items"]
    urls = [props(c)["url"][0] for c in feed["children"]]
    assert urls == [
        f"{BASE_URL}/posts/{s}/" for s in ("a-reply", "spoilers", "quick-note", "first-article")
    ]
