"""The HTML -> Markdown corpus: ``tests/data/import/<case>.html`` converts to exactly
``<case>.md``.  A new shape from the wild is a new file pair, not a new test.

Cases named ``wp-*`` are WordPress ``post_content`` and go through the WordPress
converter first.  Each case is also rendered back with the site's own Markdown renderer,
and what a reader sees must survive: every code block byte for byte, list nesting,
heading ids, sub/superscripts and the words of the text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from bs4.element import Tag

from bridge.site.importing import wordpress_content
from bridge.site.importing.html_to_markdown import convert
from bridge.site.markdown_render import MarkdownRenderer

CORPUS = Path(__file__).resolve().parents[1] / "data" / "import"
CASES = sorted(p.stem for p in CORPUS.glob("*.html"))


def source_html(case: str) -> str:
    text = (CORPUS / f"{case}.html").read_text(encoding="utf-8")
    return wordpress_content.to_html(text)[0] if case.startswith("wp-") else text


def codes(soup: BeautifulSoup) -> list[str]:
    return [p.get_text().removeprefix("\n").rstrip("\n") for p in soup.find_all("pre")]


def depth(tag: Tag) -> int:
    inner = [depth(t) for t in tag.find_all(["ul", "ol"], recursive=False)]
    children = [depth(c) for c in tag.find_all(True, recursive=False) if c.name not in ("ul", "ol")]
    own = 1 if tag.name in ("ul", "ol") else 0
    return own + max([0, *inner, *children])


def words(soup: BeautifulSoup) -> list[str]:
    """The words a reader sees outside code, footnote lists and embeds."""
    for tag in soup.find_all(["pre", "script", "iframe", "object", "form"]):
        tag.decompose()
    for tag in soup.find_all(class_=re.compile("footnote")):
        tag.decompose()
    for tag in soup.find_all("sup"):
        if tag.find("a"):
            tag.decompose()
    text = soup.get_text(" ").replace("’", "'")
    return re.findall(r"[\w']+", text)


def paragraphs(soup: BeautifulSoup) -> list[str]:
    return [" ".join(p.get_text().split()) for p in soup.find_all("p") if not p.find_parent("li")]


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 7
    assert all((CORPUS / f"{case}.md").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_converts_exactly(case: str) -> None:
    expected = (CORPUS / f"{case}.md").read_text(encoding="utf-8")
    assert convert(source_html(case)).markdown + "\n" == expected


@pytest.mark.parametrize("case", CASES)
def test_renders_back_faithfully(case: str) -> None:
    before = BeautifulSoup(source_html(case), "html.parser")
    markdown = (CORPUS / f"{case}.md").read_text(encoding="utf-8")
    after = BeautifulSoup(MarkdownRenderer(None).render(markdown), "html.parser")
    assert codes(after) == codes(before)
    assert depth(after) == depth(before)
    heading_ids = {h["id"] for h in before.find_all(re.compile("^h[1-6]$"), id=True)}
    assert heading_ids <= {h["id"] for h in after.find_all(re.compile("^h[1-6]$"), id=True)}
    for name in ("sub", "table", "figure", "figcaption", "blockquote"):
        assert len(after.find_all(name)) == len(before.find_all(name)), name
    notes_before = len(before.select("li[id]"))
    assert len(after.select("div.footnote li")) == notes_before
    if not case.startswith(("embeds", "wp-")):  # embeds turn into link text
        assert words(after) == words(before)
        assert paragraphs(after) == paragraphs(before)  # punctuation and line starts too
