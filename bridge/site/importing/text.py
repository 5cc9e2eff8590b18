"""Plain text, links and dates shared by the feed and WordPress readers."""

from __future__ import annotations

import calendar
import datetime as dt
import html as html_mod
import re
import time
from typing import Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup
from bs4.element import Tag

_BLOCKS = (
    "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "br", "tr", "td",
    "th", "section", "article", "figcaption", "dt", "dd",
)  # fmt: skip
_NOT_PROSE = ("pre", "code", "script", "style", "table", "figure", "iframe", "sup", "noscript")


def plain_text(fragment: str, *, prose_only: bool = False) -> str:
    """The text of an HTML fragment, entities decoded, whitespace collapsed.

    Inline elements join without a space (``<b>Hi</b>,`` -> ``Hi,``, never ``Hi ,``);
    block elements are separated by one.  ``prose_only`` leaves out code, tables,
    figures and footnote marks, for summaries.
    """
    soup = BeautifulSoup(fragment, "html.parser")
    if prose_only:
        for tag in soup.find_all(_NOT_PROSE):
            if isinstance(tag, Tag):
                tag.decompose()
    for tag in soup.find_all(_BLOCKS):
        if isinstance(tag, Tag):
            tag.insert_before(" ")
            tag.insert_after(" ")
    return " ".join(html_mod.unescape(soup.get_text("")).split())


def is_http(url: Any) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def _srcset(value: str, base: str) -> str:
    out = []
    for candidate in value.split(","):
        parts = candidate.strip().split(maxsplit=1)
        if parts:
            parts[0] = urljoin(base, parts[0])
            out.append(" ".join(parts))
    return ", ".join(out)


def absolutize(fragment: str, base: str) -> str:
    """``fragment`` with relative ``href``/``src``/``srcset``/``poster``/``data`` resolved
    on ``base``.  In-page anchors (``#note-1``) stay as they are."""
    if not base:
        return fragment
    soup = BeautifulSoup(fragment, "html.parser")
    for tag in soup.find_all(True):
        if not isinstance(tag, Tag):
            continue
        for attr in ("href", "src", "poster", "data"):
            value = tag.get(attr)
            if isinstance(value, str) and value.strip() and not value.startswith("#"):
                tag[attr] = urljoin(base, value.strip())
        srcset = tag.get("srcset")
        if isinstance(srcset, str):
            tag["srcset"] = _srcset(srcset, base)
    return str(soup)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n".join(f"<p>{html_mod.escape(p.strip())}</p>" for p in paragraphs)


def struct_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        moment = dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment if moment.year > 1970 else None


def wp_date(value: Any) -> dt.datetime | None:
    """WordPress's ``YYYY-MM-DD HH:MM:SS`` (UTC for the ``_gmt`` fields); None for the
    ``0000-00-00`` of drafts never scheduled."""
    if not isinstance(value, str) or not value.strip() or value.startswith("0000"):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def cut_summary(fragment: str, limit: int = 280) -> str:
    """A clean plain-text summary: prose only (no code, tables or figures), cut at a
    sentence end when one is near the limit, else at a word, with ``…``."""
    text = plain_text(fragment, prose_only=True)
    if len(text) <= limit:
        return text
    head = text[:limit]
    sentence = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if sentence >= limit // 2:
        return head[: sentence + 1]
    return head.rsplit(" ", 1)[0].rstrip(",;:–—-") + "…"
