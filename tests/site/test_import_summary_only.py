"""Summary-only feeds are noticed, completed from each post's page, or imported as drafts
with a warning naming the post: never silently truncated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.errors import BridgeError, FetchError
from bridge.site import content, importer
from bridge.site.importing import feeds, full_content
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture


def rss(items: str, generator: str = "") -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>'
        f"<link>https://s.example/</link>{generator}{items}</channel></rss>"
    ).encode()


def item(slug: str, description: str, extra: str = "") -> str:
    return (
        f"<item><title>{slug.title()}</title><link>https://s.example/posts/{slug}/</link>"
        f"<guid>https://s.example/posts/{slug}/</guid>"
        f"<pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate>"
        f"<description>{description}</description>{extra}</item>"
    )


def test_summary_only_feeds_are_detected() -> None:
    hugo = feeds.read(rss(item("a", "Short text."), "<generator>Hugo -- gohugo.io</generator>"))
    assert hugo.entries[0].truncated  # Hugo's RSS always carries .Summary
    cut = feeds.read(
        rss(
            item("ellipsis", "It starts like this…")
            + item("more", "Teaser. &lt;a href='/more/'&gt;Read more&lt;/a&gt;")
            + item("dots", "Pelican style [...]")
            + item("whole", "A short post, whole.")
            + item(
                "full",
                "Teaser…",
                "<content:encoded>&lt;p&gt;All of it.&lt;/p&gt;</content:encoded>",
            )
        ).replace(b"<rss ", b'<rss xmlns:content="http://purl.org/rss/1.0/modules/content/" ')
    )
    assert [e.truncated for e in cut.entries] == [True, True, True, False, False]


ARTICLE = """<html><body><header>Site menu</header><main>
<article class="h-entry"><h1 class="p-name">A</h1>
<div class="e-content"><p>The <strong>whole</strong> post, far longer than its summary.</p>
<pre><code>code()\n\n  more()</code></pre></div>
<footer>Posted by me</footer></article></main></body></html>"""
PLAIN_ARTICLE = """<html><body><nav>Home</nav><article><header><h1>B</h1></header>
<p>All of post B, and then <a href="../other/">a relative link</a>.</p>
<footer>Share this</footer></article></body></html>"""


def test_the_post_is_found_in_its_page() -> None:
    found = full_content.extract(ARTICLE)
    assert found is not None and "whole" in found and "Posted by me" not in found
    assert "code()\n\n  more()" in found
    plain = full_content.extract(PLAIN_ARTICLE)
    assert plain is not None
    assert "All of post B" in plain and "Share this" not in plain and "<h1>" not in plain
    assert full_content.extract("<html><body><div>No post here</div></body></html>") is None


def test_completion_uses_the_page_or_says_why_not() -> None:
    feed = feeds.read(
        rss(
            item("a", "The whole post…")
            + item("b", "All of post B…")
            + item("c", "Gone…")
            + item("d", "Elsewhere…")
        )
    )
    pages = {
        "https://s.example/posts/a/": ARTICLE,
        "https://s.example/posts/b/": PLAIN_ARTICLE,
        "https://s.example/posts/d/": "<html><body><p>Cookie banner</p></body></html>",
    }
    asked: list[str] = []

    async def fetch(url: str) -> str:
        asked.append(url)
        if url not in pages:
            raise FetchError(f"{url}: HTTP 404", 404)
        return pages[url]

    done = asyncio.run(full_content.complete(feed, fetch))
    a, b, c, d = done.entries
    assert asked == [f"https://s.example/posts/{s}/" for s in "abcd"]
    assert not a.truncated and "<strong>whole</strong>" in a.html and a.warnings == ()
    assert not b.truncated and 'href="https://s.example/posts/other/"' in b.html
    assert c.truncated and c.warnings == (
        "the feed has a summary only and its page could not be fetched: "
        "https://s.example/posts/c/: HTTP 404; imported as a draft",
    )
    assert d.truncated and "no post content found at https://s.example/posts/d/" in d.warnings[0]


def test_without_a_fetcher_summaries_become_drafts(site: Path, tmp_path: Path) -> None:
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss(item("a", "Only the start…")))
    config = config_mod.load(site)
    report = importer.import_feed(config, str(feed))
    assert (report.posts, report.drafts) == (0, 1)
    assert report.warnings == [
        "warning: 'A': the feed has a summary only and its page could not be fetched: "
        "fetching pages is off; imported as a draft"
    ]
    posts, _ = content.load(config, drafts=True)
    assert posts[0].draft and posts[0].body.strip() == "Only the start…"


def test_the_cli_completes_posts_over_http(site: Path, web: WebServer) -> None:
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    toml = site / "site.toml"
    toml.write_text("allow_private_addresses = true\n" + toml.read_text(encoding="utf-8"))
    base = web.url("/")
    feed = rss(
        item("a", "The whole post…").replace("https://s.example/", base)
        + item("b", "All of post B…").replace("https://s.example/", base),
        "<generator>Hugo -- gohugo.io</generator>",
    )
    web.route("/index.xml", body=feed, content_type="application/rss+xml")
    web.route("/posts/a/", body=ARTICLE)
    web.route("/posts/b/", status=500, body="oops")
    result = CliRunner().invoke(main, ["import", web.url("/index.xml"), "--site", str(site)])
    assert result.exit_code == 0, result.output
    assert "Imported 1 post(s), 0 page(s), 1 draft(s)" in result.output
    assert "no post content" not in result.output
    assert "'B': the feed has a summary only and its page could not be fetched" in result.output
    assert web.requests_to("/posts/a/")[0].headers["user-agent"].startswith("indiebridge/")
    posts = {p.slug: p for p in content.load(config_mod.load(site), drafts=True)[0]}
    assert "```\ncode()\n\n  more()\n```" in posts["a"].body and not posts["a"].draft
    assert posts["b"].draft


def test_fetching_pages_can_be_turned_off(site: Path, web: WebServer) -> None:
    toml = site / "site.toml"
    toml.write_text("allow_private_addresses = true\n" + toml.read_text(encoding="utf-8"))
    feed = rss(item("a", "The whole post…").replace("https://s.example/", web.url("/")))
    web.route("/index.xml", body=feed, content_type="application/rss+xml")
    web.route("/posts/a/", body=ARTICLE)
    args = ["import", web.url("/index.xml"), "--site", str(site), "--no-fetch-pages"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "1 draft(s)" in result.output
    assert web.requests_to("/posts/a/") == []


def test_a_fetch_that_is_not_a_bridge_error_is_a_bug() -> None:
    async def broken(url: str) -> str:
        raise RuntimeError("bug")

    feed = feeds.read(rss(item("a", "Start…")))
    with pytest.raises(RuntimeError):
        asyncio.run(full_content.complete(feed, broken))
    assert issubclass(FetchError, BridgeError)
