"""Every built page is well-formed HTML5: html5lib's parser in strict mode (which raises on
any parse error the HTML standard defines: stray or unclosed tags, duplicate attributes,
misnested markup) accepts it, it has a doctype, a language and a title, and no id is used
twice on one page."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import html5lib
import pytest

from tests.conftest import Built


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids[value] += 1


def pages(built: Built) -> list[Path]:
    found = sorted(built.out.rglob("*.html"))
    assert len(found) > 10
    return found


def test_every_page_parses_as_strict_html5(built: Built) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    for path in pages(built):
        text = path.read_text(encoding="utf-8")
        try:
            doc = parser.parse(text)
        except html5lib.html5parser.ParseError as exc:
            pytest.fail(f"{path.relative_to(built.out)}: {exc}")
        assert text.startswith("<!DOCTYPE html>"), path
        assert doc.get("lang"), path
        title = doc.find("head/title")
        assert title is not None and (title.text or "").strip(), path


def test_ids_are_unique_on_each_page(built: Built) -> None:
    for path in pages(built):
        ids = _Ids()
        ids.feed(path.read_text(encoding="utf-8"))
        twice = [i for i, n in ids.ids.items() if n > 1]
        assert twice == [], f"{path.relative_to(built.out)}: ids used twice: {twice}"
