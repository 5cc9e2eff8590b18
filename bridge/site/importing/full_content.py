"""Completing summary-only entries from their permalinks.

The page is fetched by a callable the caller passes in (the CLI builds it on the
project's SSRF-safe fetcher), so this module stays pure and testable.  The post is taken
from the page's microformats ``h-entry`` ``e-content`` (microformats.org/wiki/h-entry),
else the common content wrappers of blog themes (``entry-content``, ``post-content``),
else ``<article>`` (without its header, footer and navigation), else ``<main>``.  A page
whose text is shorter than the summary is not the post, and is not used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from bs4 import BeautifulSoup
from bs4.element import Tag

from bridge.errors import BridgeError
from bridge.site.importing.model import FeedEntry, ParsedFeed
from bridge.site.importing.text import absolutize, plain_text, too_deep

Fetch = Callable[[str], Awaitable[str]]
"""GET a page: its HTML text.  Raises ``BridgeError`` (a one-line reason) on failure."""

_WRAPPERS = ("e-content", "entry-content", "post-content", "article-content")


def _in_entry(soup: BeautifulSoup) -> Tag | None:
    entry = soup.find(class_="h-entry")
    scope = entry if isinstance(entry, Tag) else soup
    for name in _WRAPPERS:
        found = scope.find(class_=name)
        if isinstance(found, Tag):
            return found
    return None


def extract(page: str) -> str | None:
    """The post's HTML in a page, or None when no content element is found."""
    if too_deep(page):
        return None
    soup = BeautifulSoup(page, "html.parser")
    found = _in_entry(soup)
    if found is None:
        article = soup.find("article") or soup.find("main")
        if not isinstance(article, Tag):
            return None
        for chrome in article.find_all(["header", "footer", "nav", "aside", "script"]):
            if isinstance(chrome, Tag):
                chrome.decompose()
        found = article
    inner = found.decode_contents().strip()
    return inner or None


async def complete_entry(entry: FeedEntry, fetch: Fetch) -> FeedEntry:
    """``entry`` with its full text when it was summary-only and the page has it;
    otherwise unchanged but for a warning saying why."""
    if not entry.truncated:
        return entry
    if not entry.link:
        reason = "it has no permalink to fetch"
    else:
        try:
            page = await fetch(entry.link)
        except BridgeError as exc:
            reason = f"its page could not be fetched: {exc}"
        else:
            found = extract(page)
            if found and len(plain_text(found)) >= len(plain_text(entry.html)) * 0.9:
                return dataclasses.replace(
                    entry, html=absolutize(found, entry.link), truncated=False
                )
            reason = f"no post content found at {entry.link}"
    warning = f"the feed has a summary only and {reason}; imported as a draft"
    return dataclasses.replace(entry, warnings=(*entry.warnings, warning))


async def complete(feed: ParsedFeed, fetch: Fetch | None) -> ParsedFeed:
    """Every summary-only entry completed from its page (one at a time: a blog's own
    server, politely)."""
    if fetch is None and not any(e.truncated for e in feed.entries):
        return feed

    async def nothing(url: str) -> str:
        raise BridgeError("fetching pages is off")

    entries = [await complete_entry(e, fetch or nothing) for e in feed.entries]
    return dataclasses.replace(feed, entries=tuple(entries))
