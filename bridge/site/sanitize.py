"""Cleaning what strangers write, before it is stored and again when it is shown.

Pure functions over nh3 (a maintained HTML sanitiser, Rust ammonia underneath): remote
HTML is reduced to a small allow-list of tags with only http(s)/mailto links; names are
one line with bidi and control characters removed; URLs that reach an attribute must be
absolute http(s).  The theme applies them at render time too (``sanitize`` and
``safe_url`` filters), so a page never depends on how a comment file got there.
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import nh3

ALLOWED_TAGS = frozenset(
    {"p", "br", "a", "span", "em", "strong", "b", "i", "u", "del", "code", "pre",
     "blockquote", "ul", "ol", "li"}
)  # fmt: skip
# Dropped together with everything inside them (not just the tags).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "svg", "math", "iframe", "frame", "frameset", "object", "embed",
     "form", "button", "select", "textarea", "noscript", "template", "title", "head"}
)  # fmt: skip
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow ugc noopener"
MAX_CONTENT = 20_000  # characters of raw HTML kept; longer comments are cut, then cleaned
MAX_NAME = 100

# C0/C1 controls, bidi embeddings/overrides/isolates and marks, and other invisible format
# characters that could reorder or hide the text around a name.
_UNSAFE_TEXT = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def _href_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "a" and attribute == "href":
        scheme = urlsplit(value.strip()).scheme.lower()
        if scheme and scheme not in LINK_SCHEMES:
            return None
    return value


def sanitize_html(html: str, base_url: str = "", limit: int | None = MAX_CONTENT) -> str:
    """Clean remote HTML for display (see the module docstring); "" stays "".

    ``limit`` cuts raw HTML before cleaning (ingestion); rendering passes None, since what
    it shows was already cut when it was stored.
    """
    if not html:
        return ""
    if limit is not None:
        html = html[:limit]
    relative: Any = ("rewrite_with_base", base_url) if http_url(base_url) else "deny"
    cleaned: str = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={"a": {"href"}},
        attribute_filter=_href_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(LINK_SCHEMES),
        url_relative=relative,
    )
    return cleaned.strip()


def clean_text(value: Any, limit: int = MAX_NAME) -> str:
    """Plain one-line text: no controls or bidi overrides, whitespace collapsed, cut."""
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFC", _UNSAFE_TEXT.sub(" ", value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain_text(value: Any, limit: int = MAX_NAME) -> str:
    """The text of a remote HTML fragment (tags dropped), as ``clean_text``."""
    if not isinstance(value, str):
        return ""
    text = html_lib.unescape(
        nh3.clean(value, tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT))
    )
    return clean_text(text, limit)


def http_url(value: Any) -> str:
    """``value`` if it is an absolute http(s) URL with a host, else ""."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    if any(ch in url for ch in "\"'<> \t\r\n\\"):
        return ""
    return url
