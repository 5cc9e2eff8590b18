"""Cleaning what strangers write, before it is stored and again when it is shown.

Pure functions over nh3 (a maintained HTML sanitiser, Rust ammonia underneath): remote
HTML is reduced to a small allow-list of tags with only http(s)/mailto links; names are
one line with bidi and control characters removed; URLs that reach an attribute must be
absolute http(s).  The theme applies them at render time too (``sanitize`` and
``safe_url`` filters), so a page never depends on how a comment file got there.

Custom emoji (``bridge.conversations.emoji``) are the one image a comment may show, and
only at render time (``emoji=True``): exactly ``<img class="emoji" src alt title>`` whose
``src`` is one of the site's own stored emoji files (``/static/emoji/<sha256>.<ext>``, a
path on the blog's host, which is always the root of ``base_url``) and whose ``alt`` is a
``:shortcode:``.  Any other ``<img>`` is removed; one that names no stored file leaves its
shortcode as text.  Ingestion (``emoji=False``) allows no image at all: only the emoji step,
after sanitising, writes them.
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
EMOJI_PATH = "/static/emoji/"
EMOJI_SRC = re.compile(r"/static/emoji/[0-9a-f]{64}\.(?:png|gif|webp|jpg)")
EMOJI_ALT = re.compile(r":[A-Za-z0-9_]{1,64}:")
_IMG_TAG = re.compile(r"<img\b[^>]*>")  # nh3 output: ``>`` inside a value is ``&gt;``
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')

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


def _emoji_filter(tag: str, attribute: str, value: str) -> str | None:
    """With emoji allowed, relative URLs pass nh3, so this filter decides: a link must be
    absolute; an image only keeps a stored emoji's path, ``class="emoji"`` and a shortcode."""
    if tag == "a" and attribute == "href":
        return value if urlsplit(value.strip()).scheme else None
    if tag == "img":
        allowed = {"src": EMOJI_SRC, "alt": EMOJI_ALT, "title": EMOJI_ALT}.get(attribute)
        if attribute == "class":
            return value if value == "emoji" else None
        return value if allowed is not None and allowed.fullmatch(value) else None
    return _href_filter(tag, attribute, value)


def _emoji_or_text(match: re.Match[str]) -> str:
    """Keep an ``<img>`` only when it is exactly one of ours; else its shortcode as text."""
    attributes: dict[str, str] = dict(_ATTRIBUTE.findall(match.group(0)))
    if attributes.get("class") == "emoji" and "src" in attributes and "alt" in attributes:
        return match.group(0)
    return attributes.get("alt", "")


def sanitize_html(
    html: str, base_url: str = "", limit: int | None = MAX_CONTENT, *, emoji: bool = False
) -> str:
    """Clean remote HTML for display (see the module docstring); "" stays "".

    ``limit`` cuts raw HTML before cleaning (ingestion); rendering passes None, since what
    it shows was already cut when it was stored.  ``emoji`` (rendering) also keeps the
    custom emoji images of ``bridge.conversations.emoji`` and nothing else of ``<img>``;
    relative links are then dropped as without a ``base_url``.
    """
    if not html:
        return ""
    if limit is not None:
        html = html[:limit]
    relative: Any = ("rewrite_with_base", base_url) if http_url(base_url) else "deny"
    tags, attributes = set(ALLOWED_TAGS), {"a": {"href"}}
    if emoji:
        tags.add("img")
        attributes["img"] = {"class", "src", "alt", "title"}
        relative = "pass_through"  # a stored emoji's src is a path; _emoji_filter checks
    cleaned: str = nh3.clean(
        html,
        tags=tags,
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes=attributes,
        attribute_filter=_emoji_filter if emoji else _href_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(LINK_SCHEMES),
        url_relative=relative,
    )
    if emoji:
        cleaned = _IMG_TAG.sub(_emoji_or_text, cleaned)
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
