"""Remote input is hostile: a feed or export fetched from a URL cannot make an import
crash with a traceback or run for minutes."""

from __future__ import annotations

import time
from pathlib import Path

from bridge import config as config_mod
from bridge.site import content, importer
from bridge.site.importing import full_content, wordpress_content
from bridge.site.importing.html_to_markdown import convert
from bridge.site.importing.text import TOO_DEEP, shallow, too_deep


def test_html_nested_too_deeply_is_kept_as_text() -> None:
    deep = "<p>1986. Intro *x*</p>" + "<div>" * 5000 + "deep <b>text</b>" + "</div>" * 5000
    converted = convert(deep)
    assert converted.warnings == (TOO_DEEP,)
    assert converted.markdown == "1986\\. Intro \\*x\\*\n\ndeep text"


def test_a_deep_feed_entry_is_imported_with_a_warning(site: Path, tmp_path: Path) -> None:
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    body = "&lt;div&gt;" * 4000 + "still here" + "&lt;/div&gt;" * 4000
    feed = tmp_path / "deep.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>D</title>'
        "<link>https://d.example/</link><item><title>Deep</title>"
        "<link>https://d.example/deep/</link><pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate>"
        f"<description>{body}</description></item></channel></rss>",
        encoding="utf-8",
    )
    config = config_mod.load(site)
    report = importer.import_feed(config, str(feed))
    assert report.warnings == [f"warning: 'Deep': {TOO_DEEP}"]
    posts, _ = content.load(config)
    assert posts[0].body.strip() == "still here"


def test_shortcode_floods_stay_linear() -> None:
    started = time.monotonic()
    wordpress_content.to_html("[caption]" * 100_000)  # each opens, none closes
    wordpress_content.to_html("[[x]" * 50_000)  # escaped openings, never closed
    html, warnings = wordpress_content.to_html("[nope a=b]" * 50_000)
    assert time.monotonic() - started < 20  # quadratic scanning took minutes here
    assert warnings == ("unknown shortcode [nope] left as it is",)  # one line, not 50,000
    assert html.count("[nope a=b]") == 50_000


def test_many_footnotes_convert() -> None:
    n = 500
    refs = "".join(f'<p>x<sup><a href="#fn{i}">{i}</a></sup></p>' for i in range(n))
    notes = "".join(f'<li id="fn{i}">note {i}</li>' for i in range(n))
    markdown = convert(f'{refs}<div class="footnotes"><ol>{notes}</ol></div>').markdown
    assert markdown.count("[^") == 2 * n and markdown.endswith(f"[^{n}]: note {n - 1}")


def test_depth_is_measured_without_parsing() -> None:
    assert not too_deep("<p>a<br>b</p><ul><li>one<li>two</ul>" * 1000)  # siblings, not depth
    assert not too_deep("<div>" * 200 + "</div>" * 200)
    assert too_deep("<div>" * 201)
    assert too_deep("<span><b>" * 150)
    text, warnings = shallow("<p>Kept &amp; fine</p>")
    assert (text, warnings) == ("<p>Kept &amp; fine</p>", ())
    text, warnings = shallow("<div>" * 300 + "<p>One &lt;tag&gt;</p><p>Two</p>" + "</div>" * 300)
    assert text == "<p>One &lt;tag&gt;</p>\n<p>Two</p>" and warnings == (TOO_DEEP,)


def test_a_page_nested_too_deeply_is_not_searched_for_the_post() -> None:
    page = "<article>" + "<div>" * 1000 + "text" + "</div>" * 1000 + "</article>"
    started = time.monotonic()
    assert full_content.extract(page) is None
    assert time.monotonic() - started < 1
