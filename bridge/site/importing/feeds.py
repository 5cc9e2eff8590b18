"""Reading an RSS 1.0/2.0 or Atom feed (anything but a WordPress export) with feedparser.

Facts relied on:

* Hugo's built-in RSS template puts ``.Summary`` (the first 70 words, or the text before
  ``<!--more-->``) in ``<description>`` and has no ``content:encoded``
  (gohugo/hugo ``tpl/tplimpl/embedded/templates/_default/rss.xml``); it names itself in
  ``<generator>Hugo -- gohugo.io</generator>``.
* Pelican's RSS feeds carry only the summary by default (``RSS_FEED_SUMMARY_ONLY = True``,
  docs.getpelican.com/en/latest/settings.html#feed-settings); an automatic summary ends
  with ``SUMMARY_END_SUFFIX``, ``…``.  Its Atom feeds carry the summary beside the
  content.
* Hugo's home feed lists every regular page, sections and top-level pages alike; with
  the default permalinks a post lives under its section (``/posts/slug/``) and a page
  such as ``/about/`` at the top, so in a Hugo feed a one-segment path is a page.
* An entry's ``<description>`` is its body unless the feed also has ``content:encoded``
  or Atom ``<content>``; then it is a summary, which may be a cut of the body (Pelican,
  WordPress) or the author's own excerpt.
* A category's ``scheme`` (Atom, RFC 4287 section 4.2.2.2: an IRI of a categorization
  scheme) or ``domain`` (RSS 2.0) is the tag's page only when it is a folder below the
  site root (``https://old.example/tags/`` + term).  WordPress's Atom template writes the
  home URL there (``wp-includes/feed-atom.php``, ``bloginfo_rss('url')``), and Blogger a
  namespace (``http://www.blogger.com/atom/ns#``): neither names a tag page.
"""

from __future__ import annotations

import html as html_mod
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser

from bridge.site.importing.model import FeedEntry, FeedError, ParsedFeed
from bridge.site.importing.text import (
    absolutize,
    is_http,
    plain_text,
    shallow,
    struct_time,
    text_to_html,
)

_ELLIPSIS = re.compile(r"(?:…|\.\.\.|\[(?:…|\.\.\.|&hellip;)\])\s*$")
_READ_MORE = re.compile(
    r"<a\b[^>]*>\s*(?:read more|continue reading|more|read the rest|weiterlesen|lire la suite)"
    r"[^<]{0,20}</a>",
    re.I,
)


def _raw(mapping: Any, key: str) -> Any:
    """A key of a feedparser dict, without its deprecated updated/published aliasing."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _title(entry: Mapping[str, Any]) -> str | None:
    title = entry.get("title")
    if not isinstance(title, str):
        return None
    detail = entry.get("title_detail") or {}
    if "html" in str(detail.get("type", "")):
        title = plain_text(title)
    title = " ".join(title.split())
    return title or None


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for tag in entry.get("tags") or []:
        name = tag.get("label") or tag.get("term")
        if not isinstance(name, str):
            continue
        name = " ".join(html_mod.unescape(name).split()).lstrip("#")
        if name:
            out.setdefault(name.lower(), name)
    return tuple(out.values())


def tag_page(scheme: Any, term: Any) -> str | None:
    """The tag's page on the original site, when the category's scheme names a tag folder."""
    if not isinstance(scheme, str) or not isinstance(term, str) or not term.strip():
        return None
    parts = urlsplit(scheme.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or not parts.path.endswith("/")
        or parts.path == "/"
    ):
        return None
    return scheme.strip() + quote(term.strip(), safe="")


def _tag_links(entry: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out: dict[str, tuple[str, str]] = {}
    for tag in entry.get("tags") or []:
        name, page = (
            tag.get("label") or tag.get("term"),
            tag_page(tag.get("scheme"), tag.get("term")),
        )
        if isinstance(name, str) and page:
            name = " ".join(html_mod.unescape(name).split()).lstrip("#")
            out.setdefault(name.lower(), (name, page))
    return tuple(out.values())


def _top_level(link: str | None) -> bool:
    return bool(link) and len([s for s in urlsplit(link or "").path.split("/") if s]) == 1


def looks_cut(fragment: str) -> bool:
    """A description that ends in an ellipsis or a "Read more" link is a summary."""
    text = plain_text(fragment)
    return bool(_ELLIPSIS.search(text) or _READ_MORE.search(fragment))


def is_cut_of(summary: str, body: str) -> bool:
    """``summary`` is the start of ``body`` (an automatic summary, not an excerpt)."""
    short = _ELLIPSIS.sub("", plain_text(summary)).strip()
    return bool(short) and plain_text(body).startswith(short[: max(20, len(short) - 3)])


def _body(entry: Mapping[str, Any], hugo: bool) -> tuple[str, str | None, bool]:
    """(body HTML, the author's excerpt or None, whether the body is only a summary)."""
    contents = [c for c in entry.get("content") or [] if isinstance(c.get("value"), str)]
    html_contents = [c for c in contents if "html" in str(c.get("type", ""))]
    chosen = (html_contents or contents or [None])[0]
    summary_detail = entry.get("summary_detail")
    summary_value = entry.get("summary") if isinstance(entry.get("summary"), str) else ""
    if chosen is not None:
        body = str(chosen["value"])
        if "html" not in str(chosen.get("type", "")):
            body = text_to_html(body)
        excerpt = None
        separate = summary_detail is not None and summary_value != chosen["value"]
        if separate and summary_value and not is_cut_of(summary_value, body):
            excerpt = plain_text(summary_value, prose_only=True) or None
        return body, excerpt, False
    body = summary_value or ""
    if summary_detail is not None and "html" not in str(summary_detail.get("type", "html")):
        body = text_to_html(body)
    return body, None, bool(body) and (hugo or looks_cut(body))


def read(data: bytes, *, url: str = "") -> ParsedFeed:
    """Parse feed bytes; ``url`` (where they came from) resolves relative links last.

    Raises:
        FeedError: not a feed (nothing feed-like could be read).
    """
    parsed = feedparser.parse(data, resolve_relative_uris=False, response_headers={})
    feed = parsed.get("feed") or {}
    entries = parsed.get("entries") or []
    if parsed.get("bozo") and not entries and not feed.get("title"):
        reason = parsed.get("bozo_exception")
        raise FeedError(f"{url or 'source'}: not an RSS or Atom feed ({reason})")
    if not parsed.get("version") and not entries:
        raise FeedError(f"{url or 'source'}: not an RSS or Atom feed")
    generator = str(feed.get("generator") or "")
    hugo = "hugo" in generator.lower()
    feed_link = feed.get("link") if is_http(feed.get("link")) else ""
    feed_updated = struct_time(_raw(feed, "updated_parsed")) or struct_time(
        _raw(feed, "published_parsed")
    )
    out = []
    for entry in entries:
        title = _title(entry)
        link = entry.get("link") if is_http(entry.get("link")) else None
        date = struct_time(_raw(entry, "published_parsed")) or struct_time(
            _raw(entry, "updated_parsed")
        )
        body, summary, truncated = _body(entry, hugo)
        body, warnings = shallow(body)
        guid = entry.get("id") if isinstance(entry.get("id"), str) else ""
        out.append(
            FeedEntry(
                key=guid or link or f"{title or ''}\0{date.isoformat() if date else ''}",
                title=title,
                link=link,
                date=date,
                updated=struct_time(_raw(entry, "updated_parsed")),
                tags=_tags(entry),
                tag_links=_tag_links(entry),
                summary=summary,
                html=absolutize(body, link or str(feed_link or "") or url),
                guid=guid,
                truncated=truncated,
                warnings=warnings,
                kind="page" if hugo and _top_level(link) else "post",
            )
        )
    return ParsedFeed(
        title=_title(feed) or "",
        link=str(feed_link or ""),
        updated=feed_updated,
        wordpress=False,
        entries=tuple(out),
        generator=generator,
    )
