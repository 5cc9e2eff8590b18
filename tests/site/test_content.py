"""content/: front matter + Markdown into posts and pages; every problem is ``path:line: ...``.

A broken file must stop the build with that one line and leave the previous output exactly as
it was, so a typo never takes a published blog down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.errors import ContentError
from bridge.site import content
from bridge.site.posts import Page, Post

POST = "content/posts/2026-01-20-new.md"


def write(site: Path, rel: str, text: str | bytes) -> None:
    path = site / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def load(site: Path, *, drafts: bool = False) -> tuple[list[Post], list[Page]]:
    return content.load(config_mod.load(site), drafts=drafts)


def content_error(site: Path) -> ContentError:
    with pytest.raises(ContentError) as info:
        load(site)
    return info.value


# ---- a broken file fails the build and leaves the old output untouched ---------------------

BROKEN: list[tuple[str, str, str | bytes, int, str]] = [
    (
        "broken YAML",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\nsummary: a: b\n---\nBody.\n",
        4,
        "invalid YAML",
    ),
    (
        "unknown key",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\ncategory: misc\n---\nBody.\n",
        4,
        "unknown front matter key 'category'",
    ),
    (
        "duplicate slug",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\nslug: quick-note\n---\nBody.\n",
        4,
        "duplicate slug 'quick-note'",
    ),
    ("missing date", POST, "---\ntitle: New\n---\nBody.\n", 1, "'date' is required"),
    (
        "bad date",
        POST,
        "---\ntitle: New\ndate: next tuesday\n---\nBody.\n",
        3,
        "'date' must be a date",
    ),
    (
        "invalid UTF-8",
        POST,
        b"---\ntitle: New\ndate: 2026-01-20\n---\nOK line.\ncaf\xe9 au lait\n",
        6,
        "UTF-8",
    ),
    (
        "image without alt",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\ntags: [a]\nimages:\n  - url: static/images/pool.png\n"
        "---\nBody.\n",
        5,
        "needs 'alt' text",
    ),
    (
        "image with blank alt",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\nimages:\n  - url: a.png\n    alt: '  '\n---\nBody.\n",
        4,
        "needs 'alt' text",
    ),
    ("no front matter", POST, "Just text.\n", 1, "missing YAML front matter"),
    ("unclosed front matter", POST, "---\ntitle: New\ndate: 2026-01-20\n", 1, "not closed"),
    (
        "path in slug",
        POST,
        "---\ntitle: New\ndate: 2026-01-20\nslug: ../../etc\n---\nBody.\n",
        4,
        "'slug' must be",
    ),
    (
        "unknown page key",
        "content/pages/about.md",
        "---\ntitle: About\nsidebar: main\n---\nText.\n",
        3,
        "unknown front matter key 'sidebar'",
    ),
    (
        "menu not a flag",
        "content/pages/about.md",
        "---\ntitle: About\nmenu: main\n---\nText.\n",
        3,
        "'menu' must be true or false",
    ),
    (
        "weight not a number",
        "content/pages/about.md",
        "---\ntitle: About\nmenu: true\nweight: first\n---\nText.\n",
        4,
        "'weight' must be a whole number",
    ),
]


@pytest.mark.parametrize(
    ("rel", "text", "line", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_file_fails_with_path_line_and_keeps_old_output(
    prebuilt: Path,
    snapshot: Callable[[Path], dict[str, bytes]],
    rel: str,
    text: str | bytes,
    line: int,
    message: str,
) -> None:
    site = prebuilt
    out = site / "public"
    before = snapshot(out)
    assert "index.html" in before
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    write(site, rel, text)
    result = CliRunner().invoke(main, ["build", "--site", str(site)])

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {rel}:{line}: "), lines[0]
    assert message in lines[0]
    assert snapshot(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".public")) == []


def test_duplicate_slug_names_the_other_file(site: Path) -> None:
    write(site, POST, "---\ndate: 2026-01-20\nslug: spoilers\n---\nBody.\n")
    err = content_error(site)
    assert (err.path, err.line) == (POST, 3)
    assert "content/posts/2026-01-14-spoilers.md" in err.message


def test_a_draft_still_takes_its_slug(site: Path) -> None:
    write(site, POST, "---\ndate: 2026-01-20\nslug: draft\n---\nBody.\n")
    assert "duplicate slug 'draft'" in str(content_error(site))


@pytest.mark.parametrize("slug", ["posts", "tags", "ap", "static", "archive"])
def test_page_cannot_take_a_built_in_folder(site: Path, slug: str) -> None:
    write(site, f"content/pages/{slug}.md", "---\ntitle: Clash\n---\nText.\n")
    err = content_error(site)
    assert err.path == f"content/pages/{slug}.md"
    assert f"duplicate slug '{slug}'" in err.message


def test_page_needs_a_title(site: Path) -> None:
    write(site, "content/pages/about.md", "---\nlang: en\n---\nText.\n")
    assert "'title' is required" in str(content_error(site))


@pytest.mark.parametrize(
    ("key_line", "message"),
    [
        ("draft: maybe", "'draft' must be true or false"),
        ("in_reply_to: example.org/post", "'in_reply_to' must be an http(s) URL"),
        ("fediverse_format: tweet", "'fediverse_format' must be article or note"),
        ("tags: {a: b}", "'tags' must be a list"),
        ("images: pool.png", "'images' must be a list"),
        ("updated: someday", "'updated' must be a date"),
    ],
)
def test_wrong_value_points_at_its_line(site: Path, key_line: str, message: str) -> None:
    write(site, POST, f"---\ntitle: New\ndate: 2026-01-20\n{key_line}\n---\nBody.\n")
    err = content_error(site)
    assert (err.path, err.line) == (POST, 4)
    assert message in err.message
    assert str(err).startswith(f"{POST}:4: ")


# ---- what a post is parsed into --------------------------------------------------------------


def test_posts_newest_first_without_drafts(site: Path) -> None:
    posts, pages = load(site)
    assert [p.slug for p in posts] == ["a-reply", "spoilers", "quick-note", "first-article"]
    assert [p.slug for p in pages] == ["about"]
    with_drafts, _ = load(site, drafts=True)
    assert with_drafts[0].slug == "draft"
    assert with_drafts[0].draft is True


def test_article_fields(site: Path) -> None:
    post = {p.slug: p for p in load(site)[0]}["first-article"]
    assert post.source == "content/posts/2026-01-10-first-article.md"
    assert post.title == "The first article"
    assert post.date == dt.datetime(2026, 1, 10, 8, 30, tzinfo=dt.UTC)
    assert post.updated == dt.datetime(2026, 1, 11, 9, 0, tzinfo=dt.UTC)
    assert post.last_modified == post.updated
    assert post.tags == ("python", "IndieWeb")
    assert post.summary == "An article with a picture, two tags and an edit."
    assert post.lang == "en"
    assert post.as_type == "Article" and not post.is_note
    assert len(post.images) == 1
    image = post.images[0]
    assert image.url == "https://blog.example/static/images/pool.png"
    assert image.alt == "A small blue rectangle standing in for a tide pool."
    assert image.media_type == "image/png"
    assert "<strong>first</strong>" in post.html
    assert '<a href="https://example.org/">link</a>' in post.html
    assert len(post.digest) == 64


def test_note_reply_and_content_warning(site: Path) -> None:
    posts = {p.slug: p for p in load(site)[0]}
    note = posts["quick-note"]
    assert note.title is None and note.is_note and note.as_type == "Note"
    assert note.date == dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)
    assert posts["a-reply"].in_reply_to == "https://example.org/posts/1"
    assert posts["spoilers"].content_warning == "Spoilers for the finale"
    assert posts["spoilers"].as_type == "Article"


def test_loose_values_are_normalised(site: Path) -> None:
    write(
        site,
        POST,
        "\ufeff---\r\ntitle: '  Spaced  '\r\ndate: 2026-01-20\r\ntags: '#one, two ,'\r\n"
        "lang: de\r\nfediverse_format: note\r\nimages:\r\n"
        "  - {url: 'https://cdn.example/x.webp', alt: ' Alt. '}\r\n---\r\nHallo.\r\n",
    )
    post = {p.slug: p for p in load(site)[0]}["new"]
    assert post.title == "Spaced"
    assert post.date == dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
    assert post.tags == ("one", "two")
    assert post.lang == "de"
    assert post.as_type == "Note"
    assert post.images[0].url == "https://cdn.example/x.webp"
    assert post.images[0].alt == "Alt."
    assert post.images[0].media_type == "image/webp"


def test_slug_comes_from_file_name_without_date(site: Path) -> None:
    write(site, "content/posts/2026-02-01-Ünïcode Title!.md", "---\ndate: 2026-02-01\n---\nx\n")
    assert "unicode-title" in {p.slug for p in load(site)[0]}


def test_markdown_is_rendered_once_then_cached(site: Path) -> None:
    c = config_mod.load(site)
    first = content.MarkdownRenderer(c.cache_dir)
    content.load(c, renderer=first)
    assert first.rendered == 6 and first.cached == 0  # 5 posts (a draft too) + 1 page
    second = content.MarkdownRenderer(c.cache_dir)
    posts, _ = content.load(c, renderer=second)
    assert second.rendered == 0 and second.cached == 6
    assert "<strong>first</strong>" in {p.slug: p for p in posts}["first-article"].html


def test_hidden_and_non_markdown_files_are_ignored(site: Path) -> None:
    write(site, "content/posts/.scratch.md", "not front matter")
    write(site, "content/posts/notes.txt", "not a post")
    assert len(load(site)[0]) == 4
