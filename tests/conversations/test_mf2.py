"""Interpreting webmention sources: response type, author, content and title.

Fixture pages live in tests/data/mf2/; author pages are served over loopback HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.conversations.html_budget import check_complexity
from bridge.conversations.mf2 import (
    Author,
    Interpretation,
    interpret,
    normalize_url,
    resolve_author,
)
from bridge.federation.fetch import IPAddress, SafeFetcher, is_public_address
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

DATA = Path(__file__).resolve().parents[1] / "data" / "mf2"
TARGET = "https://blog.example/posts/hello/"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def load(name: str, source: str | None = None, targets: list[str] | None = None) -> Interpretation:
    html = (DATA / name).read_text(encoding="utf-8")
    return interpret(html, source or f"https://src.example/{name}", targets or [TARGET])


# ---- response types -----------------------------------------------------------------------------


def test_reply_with_hcard_author_and_dates() -> None:
    result = load("reply.html", "https://alice.example/replies/1")
    assert result.type == "reply"
    assert result.author == Author(
        name="Alice Example",
        url="https://alice.example/",
        photo="https://alice.example/alice.jpg",
    )
    assert result.author_page is None
    assert result.url == "https://alice.example/replies/1#top"
    assert result.published == "2024-05-01T10:00:00+0200"
    assert result.updated == "2024-05-02T08:00:00Z"
    assert result.in_reply_to == [TARGET]
    assert result.content_text == "Great post! More"
    # raw, unsanitised: relative links resolved, <script> left for the sanitiser
    assert '<a href="https://alice.example/more">More</a>' in result.content_html
    assert "<script>" in result.content_html
    assert result.name is None  # p-name on the content element is not a title


def test_like_matches_target_across_case_and_trailing_slash() -> None:
    result = load("like.html")
    assert result.type == "like"
    assert result.author == Author(name="Bob", url="https://bob.example/")
    assert result.content_html == result.content_text == ""


def test_repost_of_an_hcite_with_fragment() -> None:
    result = load("repost.html")
    assert result.type == "repost"
    assert result.author == Author(
        name="Carol", url="https://carol.example/", photo="https://carol.example/c.png"
    )


def test_bookmark_with_title_and_summary() -> None:
    result = load("bookmark.html")
    assert result.type == "bookmark"
    assert result.name == "Reading list: distributed systems"
    assert result.content_text == "A good intro to federation."
    assert result.author == Author(name="Dave")  # plain-text author


def test_reply_to_an_hcite_target_with_escaped_p_content() -> None:
    result = load("reply-hcite.html")
    assert result.type == "reply"
    assert result.content_text == "Nice <b>work</b>"
    assert result.content_html == "Nice &lt;b&gt;work&lt;/b&gt;"
    assert result.author == Author(name="Frank")


def test_mention_when_only_the_content_links_to_us() -> None:
    result = load("mention.html")
    assert result.type == "mention"
    assert result.in_reply_to == ["https://elsewhere.example/a-post"]
    assert result.name == "Thoughts on static sites"
    # u-author is a URL: an author page to fetch, with a domain fallback meanwhile
    assert result.author_page == "https://erin.example/"
    assert result.author == Author(name="erin.example", url="https://erin.example/")


def test_type_is_decided_against_our_targets_only() -> None:
    html = """<div class="h-entry">
      <a class="u-in-reply-to" href="https://other.example/x">other</a>
      <a class="u-like-of" href="https://blog.example/posts/b">ours</a>
      <a class="u-repost-of" href="https://blog.example/posts/c/">ours too</a>
      <data class="p-rsvp" value="Yes"></data></div>"""
    assert interpret(html, "https://s.example/1", ["https://blog.example/posts/b/"]).type == "like"
    both = interpret(
        html,
        "https://s.example/1",
        ["https://blog.example/posts/b", "https://blog.example/posts/c"],
    )
    assert both.type == "repost"  # repost-of is checked before like-of
    assert both.rsvp == "yes"
    assert (
        interpret(html, "https://s.example/1", ["https://blog.example/posts/z"]).type == "mention"
    )


def test_first_entry_is_found_breadth_first() -> None:
    result = load("breadth-first.html")
    assert result.type == "like"
    assert result.content_text == "Top-level entry liking it"


# ---- authorship ---------------------------------------------------------------------------------


def test_author_from_the_parent_hfeed() -> None:
    result = load("feed.html", "https://grace.example/notes/")
    assert result.type == "reply"
    assert result.author == Author(
        name="Grace", url="https://grace.example/", photo="https://grace.example/g.png"
    )


def test_fallback_author_is_the_source_domain() -> None:
    result = load("no-author.html", "https://anon.example/p/1?x=1")
    assert result.author == Author(name="anon.example", url="https://anon.example/")
    assert result.author_page is None


def test_page_without_entry_is_a_mention_by_the_domain() -> None:
    result = load("no-entry.html", "https://plain.example/page")
    assert result.type == "mention"
    assert result.url == "https://plain.example/page"
    assert result.author == Author(name="plain.example", url="https://plain.example/")
    assert (result.content_html, result.name) == ("", None)


def test_hcard_whose_name_is_its_url_is_an_author_page() -> None:
    html = (
        '<div class="h-entry"><a class="p-author h-card" href="https://ivy.example/">'
        'https://ivy.example/</a><p class="p-content">hi</p></div>'
    )
    result = interpret(html, "https://ivy.example/1", [TARGET])
    assert result.author_page == "https://ivy.example/"


def test_implied_url_pointing_at_us_is_not_the_entry_url() -> None:
    result = load("rel-author.html", "https://src.example/notes/9")
    assert result.url == "https://src.example/notes/9"


# ---- name versus content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "title"),
    [
        ("My Trip", "<p>We went to the sea.</p>", "My Trip"),
        ("We went to the sea.", "<p>We went   to the\n sea.</p>", None),
        ("We went to", "<p>We went to the sea.</p>", None),
        ("We went to the s…", "<p>We went to the sea.</p>", None),
        ("We went to the s...", "<p>We went to the sea.</p>", None),
        ("  ", "<p>x</p>", None),
        ("A title", "", "A title"),
    ],
)
def test_name_is_only_a_real_title(name: str, content: str, title: str | None) -> None:
    html = (
        f'<div class="h-entry"><h1 class="p-name">{name}</h1>'
        f'<div class="e-content">{content}</div></div>'
    )
    assert interpret(html, "https://s.example/1", [TARGET]).name == title


def test_truncated_name_fixture_is_not_a_title() -> None:
    assert load("truncated-name.html").name is None
    assert load("no-author.html").name is None


def test_mf1_hentry_backcompat() -> None:
    result = load("mf1-hentry.html", "https://henry.example/2013/reply")
    assert result.type == "reply"  # rel="in-reply-to" marks an mf1 reply
    assert result.name == "An old-school reply"
    assert result.author == Author(name="Henry", url="https://henry.example/")
    assert result.published == "2013-06-01T12:00:00+0000"
    assert result.in_reply_to == [TARGET]
    assert result.content_text == "Replying the mf1 way to your post."


def test_broken_urls_do_not_raise() -> None:
    html = (
        '<div class="h-entry"><a class="u-in-reply-to" href="http://[x/">x</a>'
        '<a class="p-author h-card" href="http://[y">y</a><a class="u-url" href="http://[z">z</a></div>'
    )
    result = interpret(html, "https://s.example/1", ["http://[t/", TARGET])
    assert result.type == "mention"
    assert normalize_url("http://[x/#f") == "http://[x/"


def test_normalize_url() -> None:
    assert normalize_url("HTTPS://Blog.Example:443/posts/x/#c") == "https://blog.example/posts/x"
    assert normalize_url("http://a.example:8080/?q=1") == "http://a.example:8080?q=1"
    assert normalize_url("http://a.example/") == normalize_url("http://a.example")


# ---- author pages over loopback HTTP ------------------------------------------------------------

HOST = "alice.test"


async def resolver(host: str, port: int) -> list[str]:
    if host == HOST:
        return ["127.0.0.1"]
    if host == "internal.test":
        return ["192.168.7.7"]
    raise OSError(host)


def policy(host: str, ip: IPAddress) -> bool:
    return (host == HOST and ip.is_loopback) or is_public_address(ip)


def fetcher() -> SafeFetcher:
    return SafeFetcher(resolver=resolver, address_policy=policy, timeout=3.0)


DECOY = '<div class="h-card"><a class="p-name u-url" href="https://decoy.example/">Decoy</a></div>'


@pytest.mark.anyio
async def test_author_from_rel_author_page_with_url_uid_card(web: WebServer) -> None:
    web.route(
        "/about",
        body=DECOY + '<div class="h-card"><img class="u-photo" src="/me.png" alt="">'
        '<a class="p-name u-url u-uid" href="/about">Alice A.</a></div>',
    )
    source = web.url("/notes/1", host=HOST)
    result = load("rel-author.html", source)
    assert result.author_page == web.url("/about", host=HOST)
    async with fetcher() as f:
        author = await resolve_author(f, result.author_page)
    assert author == Author(
        name="Alice A.", url=web.url("/about", host=HOST), photo=web.url("/me.png", host=HOST)
    )


@pytest.mark.anyio
async def test_author_page_card_linked_by_rel_me(web: WebServer) -> None:
    web.route(
        "/profile",
        body=DECOY + '<a rel="me" href="https://social.example/@alice">Mastodon</a>'
        '<div class="h-card"><a class="p-name u-url" href="https://social.example/@alice">Alice</a></div>',
    )
    async with fetcher() as f:
        author = await resolve_author(f, web.url("/profile", host=HOST))
    assert author == Author(name="Alice", url="https://social.example/@alice")


@pytest.mark.anyio
async def test_author_page_card_with_the_page_url_after_a_redirect(web: WebServer) -> None:
    web.route("/me", status=301, headers={"Location": "/home/"})
    web.route(
        "/home/", body=DECOY + '<p class="h-card"><a class="p-name u-url" href="/home">Al</a></p>'
    )
    async with fetcher() as f:
        author = await resolve_author(f, web.url("/me", host=HOST))
    assert author == Author(name="Al", url=web.url("/home", host=HOST))


@pytest.mark.anyio
async def test_author_page_without_representative_card(web: WebServer) -> None:
    web.route("/someone", body=DECOY)
    web.route("/missing", status=404, body=DECOY)
    web.route("/json", body="{}", content_type="application/json")
    async with fetcher() as f:
        assert await resolve_author(f, web.url("/someone", host=HOST)) is None
        assert await resolve_author(f, web.url("/missing", host=HOST)) is None
        assert await resolve_author(f, web.url("/json", host=HOST)) is None
        assert await resolve_author(f, "http://internal.test/about") is None  # blocked
        assert await resolve_author(f, "mailto:alice@example.com") is None
    assert [r.path for r in web.requests] == ["/someone", "/missing", "/json"]


def test_html_bombs_are_refused_before_parsing() -> None:
    """Attribute floods and deep nesting would make mf2py slow; a linear scan refuses them."""
    import time

    from bridge.conversations import mf2

    many_attrs = '<a href="x" ' + " ".join(f"a{i}=x" for i in range(5000)) + ">x</a>"
    deep = "<div>" * 5000 + "x" + "</div>" * 5000
    for page in (many_attrs, deep):
        started = time.monotonic()
        with pytest.raises(mf2.SourceTooComplex):
            mf2.interpret(page, "https://source.example/", ["https://blog.example/posts/x/"])
        assert time.monotonic() - started < 1.0
    check_complexity("<p>" + "<br>" * 5000 + "</p>")  # void elements do not nest
