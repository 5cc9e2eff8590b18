"""WordPress specifics: guid identity, comments and pingbacks, attachments, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import importer
from bridge.site.comments import CommentStore
from bridge.site.importing import wxr
from bridge.site.importing.model import FeedError

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
EXPORT = FEEDS / "wordpress-full.xml"


@pytest.fixture
def empty_site(site: Path) -> Path:
    for folder in ("posts", "pages"):
        for path in (site / "content" / folder).glob("*.md"):
            path.unlink()
    return site


def run(site: Path, source: Path) -> importer.ImportReport:
    return importer.import_feed(config_mod.load(site), str(source))


def one_item(status: str, link: str, slug: str, body: str) -> bytes:
    """A one-post export, as WordPress writes it before and after publishing."""
    text = EXPORT.read_text(encoding="utf-8")
    head = text.split("\t<item>", 1)[0]
    return (
        f"{head}\t<item><title>Harbour lights</title><link>{link}</link>"
        '<guid isPermaLink="false">https://wp.example/?p=77</guid>'
        f"<content:encoded><![CDATA[{body}]]></content:encoded>"
        "<wp:post_id>77</wp:post_id>"
        "<wp:post_date_gmt>2023-05-05 10:00:00</wp:post_date_gmt>"
        f"<wp:post_name>{slug}</wp:post_name><wp:status>{status}</wp:status>"
        "<wp:post_type>post</wp:post_type></item></channel></rss>"
    ).encode()


def test_a_draft_published_later_is_not_imported_twice(empty_site: Path, tmp_path: Path) -> None:
    before = tmp_path / "before.xml"
    before.write_bytes(one_item("draft", "https://wp.example/?p=77", "", "Draft text."))
    after = tmp_path / "after.xml"
    after.write_bytes(
        one_item("publish", "https://wp.example/2023/05/lights/", "lights", "Final text.")
    )
    first = run(empty_site, before)
    assert first.written == ["content/posts/2023-05-05-harbour-lights.md"] and first.drafts == 1
    second = run(empty_site, after)
    assert second.written == []
    assert second.skipped == [
        "skipped 'Harbour lights': already imported as content/posts/2023-05-05-harbour-lights.md"
    ]
    assert len(list((empty_site / "content" / "posts").glob("*.md"))) == 1


def test_one_guid_twice_in_a_feed_keeps_the_published_one(empty_site: Path, tmp_path: Path) -> None:
    draft = one_item("draft", "https://wp.example/?p=77", "", "Draft text.").decode()
    published = one_item("publish", "https://wp.example/2023/05/lights/", "lights", "Final.")
    item = published.decode().split("\t<item>", 2)[1].rsplit("</channel>", 1)[0]
    both = tmp_path / "both.xml"
    both.write_text(draft.replace("</channel>", f"\t<item>{item}</channel>"), encoding="utf-8")
    report = run(empty_site, both)
    assert report.written == ["content/posts/2023-05-05-lights.md"] and report.posts == 1
    assert report.skipped == ["skipped 'Harbour lights': another item has its guid"]
    assert "Final." in (empty_site / report.written[0]).read_text()


def test_comments_and_pingbacks_become_comment_files(empty_site: Path) -> None:
    report = run(empty_site, EXPORT)
    assert report.comments == 4
    assert "skipped comment 35 by Cheap pills: marked spam on 'Shipping code & pictures'" in (
        report.skipped
    )
    store = CommentStore(empty_site / "content")
    comments = {c.author.name: c for c in store.by_post()["shipping-code"]}
    assert sorted(comments) == ["Ada", "Some Blog", "Tess", "Waiting"]
    ada = comments["Ada"]
    assert (ada.type, ada.protocol, ada.status) == ("reply", "wordpress", "approved")
    assert ada.source == "https://wp.example/2023/03/shipping-code/#comment-31"
    assert ada.target == "https://blog.example/posts/shipping-code/"
    assert ada.author.url == "https://ada.example/"
    assert ada.published.isoformat() == "2023-03-02T11:00:00+00:00"  # comment_date_gmt
    assert "<script" not in ada.content and "javascript:" not in ada.content
    assert ada.content.startswith("<p>Nice code!<br>")
    assert comments["Tess"].in_reply_to == ada.source  # threaded under Ada's comment
    ping = comments["Some Blog"]
    assert ping.type == "mention"
    assert ping.source == "https://other.example/2023/03/linking-post/"
    assert comments["Waiting"].status == "pending"  # held for moderation stays held
    raw = "".join(p.read_text() for p in (empty_site / "content" / "comments").rglob("*.json"))
    for private in ("ada@mail.example", "198.51.100.4", "tess@wp.example", "SPAM-MARKER"):
        assert private not in raw

    files_before = sorted(p.name for p in (empty_site / "content/comments").rglob("*.json"))
    again = run(empty_site, EXPORT)
    assert again.written == [] and again.comments == 0
    assert sorted(p.name for p in (empty_site / "content/comments").rglob("*.json")) == (
        files_before
    )


def test_attachments_fill_galleries_and_warnings_name_the_post(empty_site: Path) -> None:
    report = run(empty_site, EXPORT)
    text = (empty_site / "content/posts/2023-03-01-shipping-code.md").read_text()
    assert "![A red boat](https://wp.example/wp-content/uploads/2012/08/boat.jpg)" in text
    assert "![gull](https://wp.example/wp-content/uploads/2023/03/gull.png)" in text
    assert report.warnings == [
        "warning: 'Old classic post': an inline script without a source removed",
        "warning: 'Shipping code & pictures': unknown shortcode [contact-form-7] left as it is",
    ]
    assert '[contact-form-7 id="5"]' in text  # left as it was, so nothing is lost


def test_entity_declarations_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaa">]>'
        b'<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel>'
        b"<wp:wxr_version>1.2</wp:wxr_version><item><title>&a;</title></item></channel></rss>"
    )
    assert wxr.is_wxr(bomb)
    with pytest.raises(FeedError, match="never declares XML entities"):
        importer.parse_feed(bomb)


def test_wxr_comments_never_carry_email_or_ip() -> None:
    feed = wxr.read(EXPORT.read_bytes())
    fields = {name for e in feed.entries for c in e.comments for name in vars(c)}
    assert fields == {
        "key", "kind", "author", "author_url", "date", "html", "approved", "parent",
    }  # fmt: skip
    assert json.dumps([str(c) for e in feed.entries for c in e.comments]).count("@") == 0


def test_an_unwritable_site_is_one_line(empty_site: Path) -> None:
    from click.testing import CliRunner

    from bridge.cli import main

    posts = empty_site / "content" / "posts"
    posts.rmdir()
    posts.write_text("a file where the folder should be")
    result = CliRunner().invoke(main, ["import", str(EXPORT), "--site", str(empty_site)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "content/posts/" in result.output and "cannot be written" in result.output
