"""Reading a webmention source: what kind of response it is, who wrote it, what it says.

``interpret`` follows the rules of mf2util (classify_comment, find_author,
is_name_a_title) on top of ``mf2py``:

* the **entry** is the first ``h-entry`` found breadth-first (top-level items, then their
  children, so entries inside an ``h-feed`` count); mf1 ``hentry`` markup works through
  mf2py's backwards compatibility;
* the **type** is decided against our target URLs, in this order: ``in-reply-to`` ->
  ``"reply"``, ``repost-of`` -> ``"repost"``, ``like-of`` -> ``"like"``, ``bookmark-of`` ->
  ``"bookmark"``, else ``"mention"``.  A property value may be a URL or an ``h-cite`` whose
  ``url`` matches; URLs are compared without fragment and without trailing-slash drift.
  A ``rel="in-reply-to"`` link to the target also makes a reply (mf1 pages mark replies so);
* the **author** follows the authorship algorithm: the entry's ``author`` (an h-card is
  used as is, a URL is an author page to fetch, plain text is a name), else the parent
  h-feed's ``author``, else the page's ``rel=author`` link (an author page).  When only an
  author page is known, ``author_page`` is set and ``author`` holds a fallback; call
  ``resolve_author`` to fetch the page's representative h-card.  Without anything, the
  author is named after the source's domain;
* ``name`` is set only when it is a real title, not just the start of the content.

No network access happens in ``interpret``.  The page is parsed within bounds of depth, size
and CPU time (``html_budget``); a page beyond them raises ``SourceTooComplex``.
**Content is not sanitised here**:
``content_html`` is the source's raw markup (relative URLs resolved by mf2py) and must be
cleaned (the comments module uses nh3) before it is stored or shown.
"""

from __future__ import annotations

import html as html_lib
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import FetchError, SourceTooComplex
from bridge.federation.fetch import SafeFetcher

__all__ = [
    "Author",
    "Interpretation",
    "SourceTooComplex",
    "interpret",
    "normalize_url",
    "representative_hcard",
    "resolve_author",
]

REFERENCE_TYPES = (
    ("in-reply-to", "reply"),
    ("repost-of", "repost"),
    ("like-of", "like"),
    ("bookmark-of", "bookmark"),
)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(frozen=True)
class Author:
    name: str
    url: str | None = None
    photo: str | None = None


@dataclass(frozen=True)
class Interpretation:
    """What a source page says about our target(s).

    ``author`` is always filled by ``interpret`` (with a fallback when the page names no
    author); ``author_page`` is the URL to pass to ``resolve_author`` for a better one.
    ``content_html`` is raw, unsanitised HTML.
    """

    type: str
    url: str
    author: Author | None
    author_page: str | None
    content_html: str
    content_text: str
    published: str | None
    updated: str | None
    name: str | None
    in_reply_to: list[str] = field(default_factory=list)
    rsvp: str | None = None


# ---- internals -----------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """A URL for comparison: no fragment, lowercase scheme/host, no default port, no
    trailing slash on the path (``https://A.example/p/`` == ``https://a.example/p#x``)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # not a valid URL (e.g. "http://[x"): compare it as written
        return url.strip().split("#", 1)[0]
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def _parse(html: str, url: str) -> dict[str, Any]:
    """mf2py over a tree built within bounds (``html_budget.parse_html``).

    The parser (mf2py, Beautiful Soup, html5lib: about 4.4 MB) is imported here, at the
    first source read, not with this module: the daemon's HTTP workers receive webmentions
    without reading them, and its background process reads them only when one comes."""
    import mf2py

    from bridge.conversations.html_budget import parse_html

    soup = parse_html(html)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 markup warnings are not our caller's problem
        parsed: dict[str, Any] = mf2py.parse(doc=soup, url=url)
    return parsed


def _text(value: Any) -> str | None:
    """The plain text of a property value (string, e-* dict or nested item)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return str(value["value"])
    return None


def _first(props: dict[str, Any], name: str) -> Any:
    values = props.get(name)
    return values[0] if isinstance(values, list) and values else None


def _props(item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and isinstance(item.get("properties"), dict):
        return dict(item["properties"])
    return {}


def _urls_of(value: Any) -> list[str]:
    """URLs a property value stands for: the string, or an h-cite's url/uid/value."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    props = _props(value)
    for key in ("url", "uid"):
        out += [t for t in map(_text, props.get(key, [])) if t]
    text = _text(value)
    if text:
        out.append(text)
    return out


def _is_http(url: str | None) -> bool:
    scheme, colon, _ = (url or "").partition(":")
    return bool(colon) and scheme.lower() in ("http", "https")


def _domain_author(url: str) -> Author:
    try:
        parts = urlsplit(url)
    except ValueError:
        return Author(name=url)
    host = parts.hostname or url
    return Author(name=host, url=f"{parts.scheme}://{parts.netloc}/" if parts.netloc else None)


def _walk(parsed: dict[str, Any], with_properties: bool) -> Iterator[tuple[dict[str, Any], Any]]:
    """Items breadth-first, each with its nearest enclosing h-feed (or None)."""
    queue: deque[tuple[Any, Any]] = deque((item, None) for item in parsed.get("items", []))
    while queue:
        item, feed = queue.popleft()
        if not isinstance(item, dict):
            continue
        yield item, feed
        inner_feed = item if "h-feed" in item.get("type", []) else feed
        queue.extend((child, inner_feed) for child in item.get("children", []))
        if with_properties:
            for values in _props(item).values():
                queue.extend((v, inner_feed) for v in values if isinstance(v, dict) and "type" in v)


def _author_from(value: Any) -> tuple[Author | None, str | None]:
    """(author, author_page) from an ``author`` property value."""
    if isinstance(value, dict):
        props = _props(value)
        name = (_text(_first(props, "name")) or "").strip()
        url = _text(_first(props, "url"))
        photo = _text(_first(props, "photo"))
        if name == (url or ""):  # an h-card whose only "name" is its link text
            name = ""
        if name or photo:
            return Author(name=name or _domain_author(url or "").name, url=url, photo=photo), None
        if _is_http(url):
            return None, url
        value = _text(value) or ""
    if isinstance(value, str):
        text = value.strip()
        if _is_http(text):
            return None, text
        if text:
            return Author(name=text), None
    return None, None


def _normalize_text(text: str) -> str:
    return " ".join(text.split())


def _is_title(name: str, content: str) -> bool:
    """mf2util's rule: a name is a title unless it is (the start of) the content."""
    name = _normalize_text(name)
    content = _normalize_text(content)
    if not name:
        return False
    if not content:
        return True
    stem = name.rstrip(".…").rstrip()  # names are sometimes the content cut with "..."
    return bool(stem) and not content.startswith(stem)


# ---- interpret ----------------------------------------------------------------------------------


def _first_entry(parsed: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """(the first h-entry breadth-first, its enclosing h-feed or None)."""
    for item, parent_feed in _walk(parsed, with_properties=False):
        if "h-entry" in item.get("type", []):
            return item, parent_feed
    return None, None


def _response_type(props: dict[str, Any], rels: dict[str, Any], wanted: set[str]) -> str:
    """reply, repost, like, bookmark (the first reference property naming a target), a
    ``rel="in-reply-to"`` link to a target (a reply), else mention."""
    for prop, reference_kind in REFERENCE_TYPES:
        if any(normalize_url(u) in wanted for v in props.get(prop, []) for u in _urls_of(v)):
            return reference_kind
    if any(normalize_url(u) in wanted for u in rels.get("in-reply-to", [])):
        return "reply"
    return "mention"


def _authorship(
    entry: dict[str, Any] | None, feed: Any, rels: dict[str, Any], source_url: str
) -> tuple[Author, str | None]:
    """(author, author_page) by the authorship algorithm: the entry's author, the h-feed's,
    the page's rel=author, else the source's domain."""
    author, author_page = None, None
    if entry is not None:
        author, author_page = _author_from(_first(_props(entry), "author"))
        if author is None and author_page is None and feed is not None:
            author, author_page = _author_from(_first(_props(feed), "author"))
    if author is None and author_page is None and rels.get("author"):
        author_page = str(rels["author"][0])
    if author is None:
        fallback = _domain_author(author_page or source_url)
        author = Author(name=fallback.name, url=author_page or fallback.url)
    return author, author_page


def _content(props: dict[str, Any]) -> tuple[str, str]:
    """(raw HTML, plain text) of ``content``, else ``summary``; text is escaped to HTML."""
    for key in ("content", "summary"):
        value = _first(props, key)
        if isinstance(value, dict) and isinstance(value.get("html"), str):
            return str(value["html"]), _text(value) or ""
        text = _text(value)
        if text:
            return html_lib.escape(text), text
    return "", ""


def _entry_url(props: dict[str, Any], wanted: set[str], source_url: str) -> str:
    """The entry's own http(s) URL, never one of our targets: mf2's implied u-url can pick
    up the only link of a short entry, which is often the link to us."""
    for u in _urls_of(_first(props, "url")):
        if _is_http(u) and normalize_url(u) not in wanted:
            return u
    return source_url


def _replied_to(props: dict[str, Any], rels: dict[str, Any]) -> list[str]:
    """The entry's ``in-reply-to`` URLs (first URL of each value), else rel=in-reply-to."""
    in_reply_to = [u for v in props.get("in-reply-to", []) for u in _urls_of(v)[:1]]
    return in_reply_to or [str(u) for u in rels.get("in-reply-to", [])]


def interpret(html: str, source_url: str, targets: list[str]) -> Interpretation:
    """Interpret a fetched source page (``source_url`` = its final URL) for ``targets``."""
    parsed = _parse(html, source_url)
    entry, feed = _first_entry(parsed)
    props = _props(entry)
    rels = parsed.get("rels", {})
    wanted = {normalize_url(t) for t in targets}
    author, author_page = _authorship(entry, feed, rels, source_url)
    content_html, content_text = _content(props)
    raw_name = _text(_first(props, "name"))
    rsvp = _text(_first(props, "rsvp"))
    return Interpretation(
        type=_response_type(props, rels, wanted),
        url=_entry_url(props, wanted, source_url),
        author=author,
        author_page=author_page,
        content_html=content_html,
        content_text=content_text,
        published=_text(_first(props, "published")),
        updated=_text(_first(props, "updated")),
        name=raw_name.strip() if raw_name and _is_title(raw_name, content_text) else None,
        in_reply_to=_replied_to(props, rels),
        rsvp=rsvp.strip().lower() if rsvp else None,
    )


# ---- author pages -----------------------------------------------------------------------------


def _card_author(card: dict[str, Any], page_url: str) -> Author:
    props = _props(card)
    url = _text(_first(props, "url")) or page_url
    name = (_text(_first(props, "name")) or "").strip()
    return Author(
        name=name or _domain_author(url).name, url=url, photo=_text(_first(props, "photo"))
    )


def representative_hcard(parsed: dict[str, Any], page_urls: list[str]) -> dict[str, Any] | None:
    """The page's representative h-card (url == uid == page, then url in rel=me, then
    url == page), or None."""
    pages = {normalize_url(u) for u in page_urls}
    rel_me = {normalize_url(u) for u in parsed.get("rels", {}).get("me", [])}
    cards = [item for item, _ in _walk(parsed, with_properties=True) if "h-card" in item["type"]]

    def values(card: dict[str, Any], key: str) -> set[str]:
        return {normalize_url(t) for t in map(_text, _props(card).get(key, [])) if t}

    for card in cards:
        if values(card, "url") & values(card, "uid") & pages:
            return card
    for card in cards:
        if values(card, "url") & rel_me:
            return card
    for card in cards:
        if values(card, "url") & pages:
            return card
    return None


async def resolve_author(fetcher: SafeFetcher, author_page: str) -> Author | None:
    """Fetch ``author_page`` and return its representative h-card as an Author, or None
    (page unreachable, blocked, not HTML, not 2xx, or without a representative h-card)."""
    if not _is_http(author_page):
        return None
    try:
        page = await fetcher.get(author_page, accept="text/html, application/xhtml+xml;q=0.9")
    except FetchError:
        return None
    if not page.ok or page.content_type not in HTML_TYPES:
        return None
    parsed = _parse(page.text, page.url)
    card = representative_hcard(parsed, [author_page, page.url])
    return _card_author(card, page.url) if card is not None else None
