"""A Hugo or Jekyll site folder imported from its Markdown sources
(tests/data/import-sites/hugo and jekyll): front matter mapped, template tags converted,
old URLs kept as original_url, drafts kept out of the built site."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_mod
from bridge.site import content, importer
from bridge.site.importing import site_folders, template_tags
from bridge.site.importing.model import FeedError
from bridge.site.posts import Post

SITES = Path(__file__).resolve().parents[1] / "data" / "import-sites"


@pytest.fixture
def empty_site(site: Path) -> Path:
    for path in (site / "content").glob("p*/*.md"):  # posts/ and pages/
        path.unlink()
    return site


def imported(site: Path, folder: str) -> tuple[importer.ImportReport, dict[str, Post]]:
    config = config_mod.load(site)
    report = importer.import_feed(config, str(SITES / folder))
    posts, _ = content.load(config, drafts=True)
    return report, {p.slug: p for p in posts}


def test_a_hugo_folder(empty_site: Path) -> None:
    report, posts = imported(empty_site, "hugo")
    assert (report.posts, report.pages, report.drafts) == (3, 1, 2)
    assert report.warnings == [
        "warning: 'A page bundle': unknown Hugo shortcode {{< tweet >}} left as it is"
    ]
    first = posts[
        "first-post"
    ]  # /2023/03/first-post/ from [permalinks] posts = /:year/:month/:slug/
    assert first.extra["original_url"] == "https://hugo.example/2023/03/first-post/"
    assert first.date == dt.datetime(2023, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert first.updated == dt.datetime(2023, 3, 5, 9, 0, tzinfo=dt.UTC)
    assert (
        first.tags == ("go", "harbour", "code") and first.summary == "Code, a figure and a video."
    )
    assert "```go\npackage main\n\n\nfunc main() {}\n```" in first.body  # {{< highlight >}}
    assert "```python\ndef f():\n\n    return 1\n```" in first.body
    assert '<img src="https://hugo.example/images/boat.jpg" alt="A boat">' in first.body
    assert "<figcaption>The boat at dawn</figcaption>" in first.body
    assert "[Video on YouTube](https://www.youtube.com/watch?v=dQw4w9WgXcQ)" in first.body
    assert "[the bundle](https://hugo.example/2023/04/my-bundle/)" in first.body  # ref
    bundle = posts["my-bundle"]  # the bundle's own slug, and its URL's last segment
    assert '`{{< figure src="x" >}}`' in bundle.body  # {{</* */>}} is a literal shortcode
    assert posts["draft-post"].draft and posts["future-post"].draft
    # No summary in the front matter: the prose is cut without the code block; a short
    # text without code needs none (the site takes its first words).
    assert posts["with-code"].summary == "Call greet first, then this: That is all, really."
    assert bundle.summary is None
    about = (empty_site / "content/pages/about.md").read_text()
    assert "title: About" in about and "Who writes here, and why." in about
    assert not any("Home" in p.read_text() for p in (empty_site / "content").rglob("*.md"))

    again = importer.import_feed(config_mod.load(empty_site), str(SITES / "hugo"))
    assert again.written == []  # by original_url and guid


def test_a_jekyll_folder(empty_site: Path) -> None:
    report, posts = imported(empty_site, "jekyll")
    assert (report.posts, report.pages, report.drafts) == (1, 1, 2)
    assert report.warnings == ["warning: 'Hello, Jekyll': Liquid tag {% include %} left as it is"]
    hello = posts["hello-jekyll"]
    assert hello.extra["original_url"] == (
        "https://jekyll.example/blog/notes/2023/04/05/hello-jekyll.html"  # permalink: date
    )
    assert hello.date == dt.datetime(2023, 4, 5, tzinfo=dt.UTC)  # from the file name
    assert hello.tags == ("ruby", "jekyll", "notes") and hello.summary == "Ruby and a link."
    assert '```ruby\ndef hello\n  puts "hi"\n\nend\n```' in hello.body
    assert "[next post](https://jekyll.example/blog/2023/05/01/second.html)" in hello.body
    assert "![A jetty](https://jekyll.example/blog/assets/jetty.png)" in hello.body
    assert "Liquid shown as text: {{ page.title }}" in hello.body  # {% raw %}
    assert posts["second"].draft and posts["work-in-progress"].draft
    pages = sorted(p.name for p in (empty_site / "content/pages").glob("*.md"))
    assert pages == ["about.md"]  # index.md and README.md are not pages


def test_drafts_from_sources_are_not_built(empty_site: Path) -> None:
    config = config_mod.load(empty_site)
    for folder in ("hugo", "jekyll"):
        importer.import_feed(config, str(SITES / folder))
    site_mod.build(config)
    texts = [p.read_text(errors="replace") for p in config.output_dir.rglob("*") if p.is_file()]
    assert any("Who writes here" in t for t in texts)  # the control
    for secret in ("SECRET-HUGO-DRAFT", "SECRET-HUGO-FUTURE", "SECRET-JEKYLL-UNPUBLISHED",
                   "SECRET-JEKYLL-DRAFT"):  # fmt: skip
        assert not any(secret in t for t in texts), secret


def test_other_folders_and_broken_front_matter_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="not a Hugo site") as err:
        site_folders.read(tmp_path)
    assert "\n" not in str(err.value)
    broken = tmp_path / "hugo"
    shutil.copytree(SITES / "hugo", broken)
    (broken / "content/posts/bad.md").write_text("---\ntitle: [unclosed\n---\nx\n")
    with pytest.raises(FeedError, match=r"^posts/bad.md: front matter cannot be read: "):
        site_folders.read(broken)
    (broken / "content/posts/bad.md").write_bytes(b"---\ntitle: \xff\n---\n")
    with pytest.raises(FeedError, match=r"bad.md: cannot be read: not UTF-8 text$"):
        site_folders.read(broken)
    (broken / "content/posts/bad.md").unlink()
    (broken / "config.toml").write_text("baseURL = \n")
    with pytest.raises(FeedError, match=r"config.toml: cannot be read: ") as err:
        site_folders.read(broken)
    assert "\n" not in str(err.value)


def test_template_tags_alone() -> None:
    text, warnings = template_tags.hugo(
        "{{% vimeo 76979871 %}} {{< gist tess abc >}}", lambda r: None
    )
    assert text == (
        "[Video on Vimeo](https://vimeo.com/76979871) "
        "[Code on GitHub Gist](https://gist.github.com/tess/abc)"
    )
    assert warnings == ()
    text, warnings = template_tags.jekyll(
        "{{ page.title }} {% link missing.md %}", lambda r: None, ""
    )
    assert text == "{{ page.title }} {% link missing.md %}"
    assert warnings == (
        "Liquid output {{ page.title }} left as it is",
        "link to 'missing.md' not found; left as it is",
    )
