"""URLs survive an import: slugs from the old URLs, redirects from old paths to new
ones, and summaries that read well where Mastodon shows them."""

from __future__ import annotations

from pathlib import Path

from bridge import config as config_mod
from bridge.site import content, importer
from bridge.site.importing import feeds, redirects
from bridge.site.importing.text import cut_summary, plain_text

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"


def test_redirect_map_from_original_urls() -> None:
    pairs = [
        ("https://blog.example/2024/01/fish-and-chips/", "https://blog.example/posts/fish-and-chips/"),
        ("https://blog.example/?p=12", "https://blog.example/posts/blocks/"),
        ("https://blog.example/posts/same/", "https://blog.example/posts/same/"),  # unchanged
        ("https://old.example/notes/one.html", "https://blog.example/posts/one/"),
        ("not a url", "https://blog.example/posts/x/"),
    ]  # fmt: skip
    assert redirects.redirect_map(pairs) == {
        "/2024/01/fish-and-chips/": "/posts/fish-and-chips/",
        "/?p=12": "/posts/blocks/",
        "/notes/one.html": "https://blog.example/posts/one/",  # another host: absolute
    }


def test_redirect_files_for_three_servers() -> None:
    table = {"/2024/01/a/": "/posts/a/", "/?p=12": "/posts/b/"}
    assert redirects.netlify(table) == (
        "/2024/01/a/ /posts/a/ 301\n# needs a query rule: /?p=12 /posts/b/ 301\n"
    )
    assert redirects.nginx(table) == (
        "map $request_uri $indiebridge_redirect {\n"
        '    default "";\n'
        "    /2024/01/a/ /posts/a/;\n"
        "    /?p=12 /posts/b/;\n"
        "}\n"
    )
    assert redirects.caddy(table) == (
        "redir /2024/01/a/ /posts/a/ 301\n"
        "@old2 {\n    path /\n    query p=12\n}\n"
        "redir @old2 /posts/b/ 301\n"
    )
    assert redirects.netlify({}) == "" and redirects.caddy({}) == ""


def test_imported_posts_give_the_redirects(site: Path) -> None:
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    config = config_mod.load(site)
    importer.import_feed(config, str(FEEDS / "rss2.xml"))
    posts, _ = content.load(config)
    urls = {p.slug: config.post_url(p.slug) for p in posts}
    table = redirects.redirect_map(redirects.post_pairs(posts, urls))
    assert table["/2024/01/fish-and-chips/"] == f"{config.base_url}/posts/fish-and-chips/"
    assert table["/2024/02/weekly-notes-two/"] == f"{config.base_url}/posts/weekly-notes-two/"
    assert len(table) == 4


def test_summaries_are_cut_cleanly() -> None:
    html = (
        "<p>A <em>Greeter</em>, <a href='/x'>explained</a>: see below.</p>"
        "<pre><code>class Greeter :\n    def __init__ ( self ) :</code></pre>"
        "<p>It greets<sup><a href='#fn:1'>1</a></sup> people.</p>"
    )
    assert cut_summary(html) == "A Greeter, explained: see below. It greets people."
    long = "<p>" + " ".join(["word"] * 100) + ". Second sentence here.</p>"
    cut = cut_summary(long, limit=100)
    assert cut.endswith("…") and len(cut) <= 101 and "  " not in cut
    sentences = "<p>" + "First sentence is long enough to keep. " * 3 + "</p>"
    assert cut_summary(sentences, limit=100) == (
        "First sentence is long enough to keep. First sentence is long enough to keep."
    )
    assert plain_text("<b>Hi</b>, <i>there</i>!") == "Hi, there!"  # no " ," artefact


def test_an_automatic_summary_is_not_the_authors_excerpt() -> None:
    body = "<p>Pelican writes a summary from the first fifty words of the post.</p>"
    assert feeds.is_cut_of("<p>Pelican writes a summary from the first…</p>", body)
    assert not feeds.is_cut_of("<p>My own short teaser.</p>", body)


def test_a_post_with_code_gets_a_clean_summary(site: Path, tmp_path: Path) -> None:
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    feed = tmp_path / "pelican.atom"
    feed.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>P</title>'
        '<link href="https://pel.example/" rel="alternate"/><id>https://pel.example/</id>'
        "<updated>2024-01-01T00:00:00Z</updated>"
        "<entry><title>Classes</title><link href='https://pel.example/classes.html'/>"
        "<id>tag:pel.example,2024-01-01:/classes.html</id>"
        "<published>2024-01-01T00:00:00Z</published><updated>2024-01-01T00:00:00Z</updated>"
        '<summary type="html">&lt;p&gt;Greeters:&lt;/p&gt;'
        "&lt;pre&gt;class Greeter :&lt;/pre&gt;…</summary>"
        '<content type="html">&lt;p&gt;Greeters:&lt;/p&gt;'
        "&lt;pre&gt;class Greeter:\n    pass&lt;/pre&gt;"
        "&lt;p&gt;That is all.&lt;/p&gt;</content></entry></feed>",
        encoding="utf-8",
    )
    config = config_mod.load(site)
    report = importer.import_feed(config, str(feed))
    assert report.written == ["content/posts/2024-01-01-classes.md"]
    posts, _ = content.load(config)
    assert posts[0].summary == "Greeters: That is all."  # no code; Pelican's cut not used
    assert posts[0].extra["original_url"] == "https://pel.example/classes.html"


def test_redirect_files_are_ready_for_a_build() -> None:
    table = {"/2024/01/a/": "/posts/a/"}
    files = redirects.redirect_files(table)
    assert sorted(files) == ["_redirects", "caddy-redirects", "nginx-redirects.conf"]
    assert files["_redirects"] == "/2024/01/a/ /posts/a/ 301\n"
    assert redirects.redirect_files({}) == {}
