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

# Block tags are padded with spaces in the source text (a tree walk inserting nodes is
# quadratic in the nesting depth, and remote HTML can nest thousands deep).
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|li|h[1-6]|blockquote|br|tr|td|th|section|article|figcaption|dt|dd)\b[^>]*>",
    re.I,
)
_NOT_PROSE = ("pre", "script", "style", "table", "figure", "iframe", "sup", "noscript")


def plain_text(fragment: str, *, prose_only: bool = False) -> str:
    """The text of an HTML fragment, entities decoded, whitespace collapsed.

    Inline elements join without a space (``<b>Hi</b>,`` -> ``Hi,``, never ``Hi ,``);
    block elements are separated by one.  ``prose_only`` leaves out code, tables,
    figures and footnote marks, for summaries.
    """
    soup = BeautifulSoup(_BLOCK_TAG.sub(r" \g<0> ", fragment), "html.parser")
    if prose_only:
        for tag in soup.find_all(_NOT_PROSE):
            if isinstance(tag, Tag):
                tag.decompose()
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


_TAG = re.compile(r"<(/?)([a-zA-Z][\w:-]*)\b[^>]*?(/?)>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "p", "li", "dt", "dd", "option", "td", "th", "tr"}
)  # fmt: skip  # void, or closed implicitly by HTML: they do not nest by themselves
MAX_DEPTH = 200
TOO_DEEP = "the HTML is nested too deeply to convert; kept as plain text"


def too_deep(fragment: str, limit: int = MAX_DEPTH) -> bool:
    """Whether elements nest deeper than ``limit``: one linear scan, no parsing (the HTML
    parser and the Markdown converter both slow down with the square of the depth)."""
    depth = 0
    for match in _TAG.finditer(fragment):
        closing, name, self_closing = match.groups()
        if name.lower() in _VOID or self_closing:
            continue
        depth += -1 if closing else 1
        if depth > limit:
            return True
    return False


def shallow(fragment: str) -> tuple[str, tuple[str, ...]]:
    """``fragment``, or for HTML nested too deeply its text as plain paragraphs and a
    warning; only then is it safe to parse and convert."""
    if not too_deep(fragment):
        return fragment, ()
    text = _TAG.sub(lambda m: "\n\n" if _BLOCK_TAG.fullmatch(m.group(0)) else "", fragment)
    paragraphs = [" ".join(html_mod.unescape(p).split()) for p in re.split(r"\n\s*\n", text)]
    return "\n".join(f"<p>{html_mod.escape(p)}</p>" for p in paragraphs if p), (TOO_DEEP,)
