"""Parsing a stranger's HTML within bounds: nesting depth, tags, attributes and CPU time.

mf2py parses with html5lib into a BeautifulSoup tree, then walks it recursively.  A page
can be shaped to make that slow or to crash it ("HTML bombs"): thousands of attributes on
one tag (quadratic in html5lib), tens of thousands of nested elements (RecursionError in
the walk), or nesting that a pre-scan does not see, such as ``<div></x>`` repeated 30,000
times (an end tag that closes nothing leaves the ``<div>`` open; 263 KiB once cost 88 s of
CPU, then a RecursionError).  So the parse itself is bounded, not only a pre-scan:

* ``check_complexity``: a linear pre-scan with the standard library's tokenizer that keeps
  a stack of open elements (an end tag only closes an element that is open), refusing more
  than ``MAX_ATTRIBUTES_PER_TAG`` attributes, ``MAX_TAGS`` tags or ``MAX_OPEN_DEPTH`` levels;
* ``parse_html``: html5lib builds the tree through a tree builder that refuses to open an
  element deeper than ``MAX_OPEN_DEPTH`` or to create more than ``MAX_TAGS`` elements, and
  that stops once the parse has used ``PARSE_BUDGET`` seconds of the thread's CPU time; the
  finished tree's depth is checked again (iteratively) before anything recurses over it.

Every refusal raises ``SourceTooComplex``.
"""

from __future__ import annotations

import time
from html.parser import HTMLParser
from typing import Any

from bs4 import BeautifulSoup, Tag
from bs4.builder._html5lib import HTML5TreeBuilder, TreeBuilderForHtml5lib

from bridge.errors import SourceTooComplex

__all__ = ["MAX_OPEN_DEPTH", "PARSE_BUDGET", "check_complexity", "parse_html"]

MAX_ATTRIBUTES_PER_TAG = 100
MAX_OPEN_DEPTH = 400
MAX_TAGS = 60_000
PARSE_BUDGET = 2.0  # seconds of CPU for one page; real pages take a few milliseconds
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip


class _Census(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.tags = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags += 1
        if len(attrs) > MAX_ATTRIBUTES_PER_TAG:
            raise SourceTooComplex(f"<{tag}> has {len(attrs)} attributes")
        if self.tags > MAX_TAGS:
            raise SourceTooComplex(f"more than {MAX_TAGS} tags")
        if tag not in _VOID:
            self.open.append(tag)
            if len(self.open) > MAX_OPEN_DEPTH:
                raise SourceTooComplex(f"nested more than {MAX_OPEN_DEPTH} deep")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.open:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        # Only an element that is open can be closed (with everything opened inside it);
        # the last 64 open elements are searched, as a parser's scope is bounded too.
        for i in range(len(self.open) - 1, max(len(self.open) - 64, 0) - 1, -1):
            if self.open[i] == tag:
                del self.open[i:]
                return


def check_complexity(html: str) -> None:
    """Raise ``SourceTooComplex`` for markup that would make the parser slow; linear time."""
    census = _Census()
    census.feed(html)
    census.close()


class _BoundedTreeBuilder(TreeBuilderForHtml5lib):
    """html5lib's tree builder for BeautifulSoup, refusing depth, size and time."""

    deadline = 0.0
    created = 0

    def _guard(self) -> None:
        self.created += 1
        if len(self.openElements) >= MAX_OPEN_DEPTH:
            raise SourceTooComplex(f"nested more than {MAX_OPEN_DEPTH} deep")
        if self.created > MAX_TAGS:
            raise SourceTooComplex(f"more than {MAX_TAGS} elements")
        if time.thread_time() > self.deadline:
            raise SourceTooComplex(f"parsing took more than {PARSE_BUDGET:g} s of CPU")

    def insertElementNormal(self, token: Any) -> Any:
        self._guard()
        return super().insertElementNormal(token)

    def insertElementTable(self, token: Any) -> Any:
        self._guard()
        return super().insertElementTable(token)

    def createElement(self, token: Any) -> Any:
        self._guard()
        return super().createElement(token)


class _BoundedHTML5(HTML5TreeBuilder):
    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget = budget

    def create_treebuilder(self, namespaceHTMLElements: bool) -> TreeBuilderForHtml5lib:
        builder = _BoundedTreeBuilder(
            namespaceHTMLElements, self.soup, store_line_numbers=self.store_line_numbers
        )
        builder.deadline = time.thread_time() + self.budget
        self.underlying_builder = builder
        return builder


def _depth(soup: BeautifulSoup) -> int:
    deepest = 0
    stack: list[tuple[Tag, int]] = [(soup, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tag))
    return deepest


def parse_html(html: str, budget: float = PARSE_BUDGET) -> BeautifulSoup:
    """``html`` as a BeautifulSoup tree built by html5lib within the bounds above."""
    check_complexity(html)
    soup = BeautifulSoup(html, builder=_BoundedHTML5(budget))
    if _depth(soup) > MAX_OPEN_DEPTH + 2:  # the html and body elements come on top
        raise SourceTooComplex(f"nested more than {MAX_OPEN_DEPTH} deep")
    return soup
