"""``import_feed``: RSS 2.0, Atom and WordPress exports become Markdown posts; nothing is
ever overwritten and importing the same feed again changes nothing."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.site import content, importer
from bridge.site.importing import files
from bridge.site.posts import Post
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
UTC = dt.UTC


def load_posts(site: Path) -> dict[str, Post]:
    posts, _ = content.load(config_mod.load(site), drafts=True)
    return {p.slug: p for p in posts}


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def empty_site(site: Path) -> Path:
    """The test site without its posts and pages, so every slug is free."""
    for folder in ("posts", "pages"):
        for path in (site / "content" / folder).glob("*.md"):
            path.unlink()
    return site


def run(site: Path, source: str | Path) -> importer.ImportReport:
    return importer.import_feed(config_mod.load(site), str(source))


def test_rss2(empty_site: Path) -> None:
    report = run(empty_site, FEEDS / "rss2.xml")
    # Slugs come from the original URLs' last segments, so old links map one to one.
    assert report.written == [
        "content/posts/2024-01-15-fish-and-chips.md",
        "content/posts/2024-02-02-weekly-notes.md",
        "content/posts/2024-02-09-weekly-notes-two.md",
        "content/posts/2024-02-10-undated.md",
    ]
    posts = load_posts(empty_site)
    fish = posts["fish-and-chips"]
    assert fish.title == "Fish & Chips – a review"  # &amp; and &#8211; decoded
    assert fish.date == dt.datetime(2024, 1, 15, 11, 30, tzinfo=UTC)  # +0100 -> UTC
    assert fish.tags == ("food", "Reviews")
    assert fish.summary == "A short excerpt about chips & fish."
    assert fish.extra["original_url"] == "https://old.example/2024/01/fish-and-chips/"
    assert "The *best* fish & chips in town – honestly." in fish.body
    assert "[about me](https://old.example/2024/about/)" in fish.body  # ../../about/
    assert "![A cone of chips](https://old.example/images/chips.jpg)" in fish.body
    assert "alert" not in fish.body  # the script is gone

    # Same title twice: two slugs; the entity-escaped description and its relative link.
    first, second = posts["weekly-notes"], posts["weekly-notes-two"]
    assert first.title == second.title == "Weekly notes"
    assert "[the review](https://old.example/2024/01/fish-and-chips/)" in first.body
    assert second.body.strip() == (
        "Week two & a [relative link](https://old.example/2024/02/weekly-notes-two/notes.html)."
    )
    assert first.summary is None  # a description alone is the body, not an excerpt

    # No pubDate: the channel's lastBuildDate.
    assert posts["undated"].date == dt.datetime(2024, 2, 10, 8, 0, tzinfo=UTC)
    assert report.undated == 1
    assert "1 undated, dated 2024-02-10T08:00:00Z" in report.summary()


def test_atom(empty_site: Path) -> None:
    report = run(empty_site, FEEDS / "atom.xml")
    assert len(report.written) == 4 and report.skipped == []
    posts = load_posts(empty_site)
    cafe = posts["cafe"]
    assert cafe.title == "Café society"  # an HTML title with &eacute;
    assert cafe.date == dt.datetime(2024, 2, 20, 6, 0, tzinfo=UTC)
    assert cafe.updated == dt.datetime(2024, 2, 21, 9, 0, tzinfo=UTC)
    assert cafe.tags == ("Coffee", "town")  # label when there is one
    assert cafe.summary == "Coffee in town, briefly."
    assert cafe.extra["original_url"] == "https://atom.example/blog/posts/cafe"  # xml:base
    assert "[photos](https://atom.example/blog/photos/)" in cafe.body
    assert "![a cup](https://atom.example/blog/posts/img/cup.png)" in cafe.body

    same, same2 = posts["same-1"], posts["same-2"]
    assert same.date == same2.date == dt.datetime(2024, 2, 25, 8, 0, tzinfo=UTC)
    assert same.extra["original_url"].endswith("/same-1")
    assert same.body.strip() == "First **same**."  # xhtml content
    assert "<p>Plain text &amp; more &lt;not a tag&gt;</p>" in same2.html  # text stays text
    assert posts["nodate"].date == dt.datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_wordpress_export(empty_site: Path) -> None:
    report = run(empty_site, FEEDS / "wordpress.xml")
    assert sorted(report.written) == [
        "content/pages/about.md",
        "content/posts/2023-05-02-trip-report.md",
        "content/posts/2023-06-01-blocks.md",
        "content/posts/2023-07-01-private-diary.md",
        "content/posts/2023-11-01-trip-report-the-coast.md",
    ]
    assert (report.posts, report.drafts, report.private, report.pages) == (2, 1, 1, 1)
    assert report.ignored == {"attachment": 1}
    assert report.skipped == ["skipped 'Deleted thoughts': WordPress status 'trash'"]

    posts = load_posts(empty_site)
    trip = posts["trip-report"]  # wp:post_name
    assert trip.title == "Trip report: the coast"
    assert trip.date == dt.datetime(2023, 5, 2, 10, 0, tzinfo=UTC)  # wp:post_date_gmt
    assert trip.updated == dt.datetime(2023, 5, 3, 8, 0, tzinfo=UTC)
    assert trip.tags == ("Travel", "sea")
    assert trip.summary == "A day by the sea."  # excerpt:encoded
    assert not trip.draft
    # Classic-editor text is paragraphed; the entity and relative links are resolved.
    assert trip.html.count("<p>") == 2
    assert "We drove to the coast – finally." in trip.body
    assert "[who we are](https://wp.example/about/)" in trip.body
    assert "- salt & wind" in trip.body

    blocks = posts["blocks"]
    assert blocks.title == "Gutenberg & blocks"
    assert blocks.tags == ()  # "Uncategorized" dropped
    assert "wp:paragraph" not in blocks.body
    assert "## A heading" in blocks.body
    assert "(https://wp.example/2023/05/trip-report/)" in blocks.body

    assert posts["private-diary"].draft
    undated_draft = posts["trip-report-the-coast"]  # same title, no post_name, no date
    assert undated_draft.draft
    assert undated_draft.date == dt.datetime(2023, 11, 1, 10, 0, tzinfo=UTC)  # channel pubDate

    _, pages = content.load(config_mod.load(empty_site))
    assert [(p.slug, p.title) for p in pages] == [("about", "About")]


def test_reimporting_changes_nothing(empty_site: Path) -> None:
    for name in ("rss2.xml", "atom.xml", "wordpress.xml"):
        run(empty_site, FEEDS / name)
    before = tree(empty_site / "content")
    for name, skipped in (("rss2.xml", 4), ("atom.xml", 4), ("wordpress.xml", 6)):
        report = run(empty_site, FEEDS / name)
        assert report.written == []
        assert len(report.skipped) == skipped
        assert all("\n" not in line for line in report.skipped)
    assert tree(empty_site / "content") == before
    assert "skipped 'Same title': already imported as content/posts/2024-02-25-same-1.md" in (
        run(empty_site, FEEDS / "atom.xml").skipped
    )


def test_existing_posts_are_never_overwritten(site: Path) -> None:
    mine = site / "content/posts/2024-02-02-weekly-notes.md"
    mine.write_text("---\ntitle: My own weekly notes\ndate: 2024-02-02\n---\nMine.\n")
    before = tree(site / "content")
    report = run(site, FEEDS / "rss2.xml")
    after = tree(site / "content")
    assert all(after[rel] == value for rel, value in before.items())
    # The imported entries got the next free slugs instead.
    assert "content/posts/2024-02-02-weekly-notes-2.md" in report.written
    assert "content/posts/2024-02-09-weekly-notes-two.md" in report.written
    load_posts(site)  # still a valid site: no duplicate slugs


def test_a_file_that_appears_meanwhile_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "post.md"
    target.write_text("theirs", encoding="utf-8")
    assert files.create(target, "ours") is False
    assert target.read_text(encoding="utf-8") == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["post.md"]  # no temporary file left


def test_undated_entries_without_a_feed_date_take_the_file_mtime(
    empty_site: Path, tmp_path: Path
) -> None:
    feed = tmp_path / "plain.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://plain.example/</link>"
        "<item><title>One</title><link>https://plain.example/one</link>"
        "<description>Body one.</description></item>"
        "<item><description>A note without title or link.</description></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    moment = dt.datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC)
    os.utime(feed, (moment.timestamp(), moment.timestamp()))
    report = run(empty_site, feed)
    assert report.written == [
        "content/posts/2022-05-06-one.md",
        "content/posts/2022-05-06-post.md",
    ]
    posts = load_posts(empty_site)
    assert posts["one"].date == moment
    assert posts["post"].title is None and posts["post"].date == moment
    # Without a link, the same title and date (or no title) still recognise the entry.
    again = run(empty_site, feed)
    assert again.written == []


def test_a_url_is_fetched_safely(empty_site: Path, web: WebServer) -> None:
    body = (
        (FEEDS / "atom.xml").read_bytes().replace(b"<updated>2024-03-01T10:00:00Z</updated>", b"")
    )
    web.route(
        "/feed.atom",
        body=body,
        content_type="application/atom+xml",
        headers={"Last-Modified": "Wed, 06 Mar 2024 12:00:00 GMT"},
    )
    result = CliRunner().invoke(main, ["import", web.url("/feed.atom"), "--site", str(empty_site)])
    assert result.exit_code == 1
    assert "is not a public address" in result.output and "Traceback" not in result.output
    assert web.requests_to("/feed.atom") == []  # refused before connecting

    toml = empty_site / "site.toml"
    toml.write_text(
        "allow_private_addresses = true\n" + toml.read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["import", web.url("/feed.atom"), "--site", str(empty_site)])
    assert result.exit_code == 0, result.output
    assert "Imported 4 post(s), 0 page(s), 0 draft(s), 0 private, 0 comment(s)" in result.output
    assert web.requests_to("/feed.atom")[0].headers["user-agent"].startswith("indiebridge/")
    # No feed date: the undated entry takes the response's Last-Modified.
    assert load_posts(empty_site)["nodate"].date == dt.datetime(2024, 3, 6, 12, tzinfo=UTC)


def test_not_a_feed_is_one_line(empty_site: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>Not a feed</p></body></html>", encoding="utf-8")
    with pytest.raises(importer.FeedError) as err:
        run(empty_site, page)
    assert "not an RSS or Atom feed" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(importer.FeedError, match="cannot be read"):
        run(empty_site, tmp_path / "missing.xml")


def test_slugs_fall_back_from_title_to_link() -> None:
    def entry(title: str | None, link: str | None, hint: str = "") -> importer.FeedEntry:
        return importer.FeedEntry(
            key="k",
            title=title,
            link=link,
            date=None,
            updated=None,
            tags=(),
            summary=None,
            html="",
            slug_hint=hint,
        )

    assert importer.slug_base(entry("Hello, World!", None)) == "hello-world"
    assert (
        importer.slug_base(entry("日本語", "https://x.example/2024/tokyo-trip.html"))
        == "tokyo-trip"
    )
    assert importer.slug_base(entry(None, "https://x.example/?p=3")) == "post"
    assert importer.slug_base(entry("T", None, hint="caf%C3%A9-au-lait")) == "cafe-au-lait"
    assert importer.unique_slug("a", {"a", "a-2"}) == "a-3"

    # An import keeps the old URL's words first: links to the old blog map one to one.
    slug = importer.import_slug
    assert slug(entry("Fish & Chips", "https://o.example/2024/01/fish-and-chips/")) == (
        "fish-and-chips"
    )
    assert slug(entry("T", "https://o.example/posts/My_Post/index.html")) == "my-post"
    assert slug(entry("T", "https://o.example/?p=3", hint="from-wordpress")) == "from-wordpress"
    assert slug(entry("Only a title", "https://o.example/")) == "only-a-title"
    assert slug(entry(None, None)) == "post"
    assert len(importer.unique_slug("x" * 80, {"x" * 80})) == 80


def test_rss1(empty_site: Path) -> None:
    report = run(empty_site, FEEDS / "rss1.rdf")
    assert report.written == ["content/posts/2021-03-30-one.md"]
    post = load_posts(empty_site)["one"]
    assert post.title == "First note & more"
    assert post.date == dt.datetime(2021, 3, 30, 16, 45, tzinfo=UTC)
    assert post.tags == ("rdf",)
    assert post.body.strip() == "Semantic [web](https://rdf.example/notes/two)."
