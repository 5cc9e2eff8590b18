"""Names and handles of remote authors, as the site shows them.

A stranger chooses its display name and ``preferredUsername``; the site must not let either
pass for someone else.  The attack this closes: a name or username padded with blank
characters (U+2800 BRAILLE PATTERN BLANK, U+200B ZERO WIDTH SPACE, Hangul fillers...) and
then cut at the length limit, so that the handle's real host fell off the end and the
commenter displayed as the blog's own owner.

* ``display_name`` drops every character that shows nothing or reorders text: controls
  (Cc), format characters (Cf: zero-width spaces, bidi embeddings, overrides, isolates and
  marks, the word joiner, tag characters, the BOM), private-use, surrogate and unassigned
  code points (controls and bidi controls become a space, as they often separate words),
  Unicode's Default_Ignorable_Code_Point set (variation selectors, Hangul fillers, Khmer
  inherent vowels, the combining grapheme joiner; Unicode DerivedCoreProperties.txt,
  https://www.unicode.org/Public/UCD/latest/ucd/DerivedCoreProperties.txt) and the blank
  symbols U+2800 and U+3164.  ZWJ/ZWNJ and VS16 stay only where they join visible
  characters (emoji sequences, Persian), once.  Whitespace is collapsed, the result NFC and
  cut to ``MAX_NAME``.
* ``handle_of`` builds ``@user@host`` from the cleaned username (cut to ``MAX_USERNAME``,
  without ``@`` or spaces) and the **host of the actor id**, IDNA-encoded (so a homograph
  host shows as ``xn--...``), never cut: the real host is always shown.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_NAME", "MAX_USERNAME", "display_name", "handle_of", "host_label"]

MAX_NAME = 100
MAX_USERNAME = 64

# Default_Ignorable_Code_Point (Unicode 15.1) beyond the Cf category, plus blank symbols.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x115F, 0x1160),  # HANGUL CHOSEONG/JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ/AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x2800, 0x2800),  # BRAILLE PATTERN BLANK (a symbol, but prints nothing)
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTORS (VS16 is kept after a visible character)
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT CONTROLS
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN/END BEAM...
    (0xE0000, 0xE0FFF),  # TAGS, VARIATION SELECTORS SUPPLEMENT
)
_JOINERS = frozenset({"\u200c", "\u200d", "\ufe0f"})  # ZWNJ, ZWJ, VS16: kept between glyphs
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Controls and bidi controls become a space (they often stand between words); whitespace
# runs collapse afterwards, so padding made of them disappears all the same.
_SEPARATING = frozenset(
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e"]
    + ["\u2066", "\u2067", "\u2068", "\u2069"]
)


def _ignorable(ch: str) -> bool:
    if unicodedata.category(ch) in _DROPPED_CATEGORIES:
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _visible_text(value: str) -> str:
    out: list[str] = []
    for ch in value:
        if ch in _JOINERS:
            previous = out[-1] if out else ""
            if previous and not previous.isspace() and previous not in _JOINERS:
                out.append(ch)
            continue
        if ch.isspace() or ch in _SEPARATING:
            out.append(" ")
        elif not _ignorable(ch):
            out.append(ch)
    text = "".join(out)
    while text and text[-1] in ("\u200c", "\u200d"):  # a joiner joins nothing at the end
        text = text[:-1]
    return text


def display_name(value: Any, limit: int = MAX_NAME) -> str:
    """A remote name as one visible line (see the module docstring); "" for non-text."""
    if not isinstance(value, str):
        return ""
    if len(value) <= _CACHED_LENGTH:
        return _cached_name(value, limit)
    return _display_name(value, limit)


def _display_name(value: str, limit: int) -> str:
    text = unicodedata.normalize("NFC", _visible_text(value))
    text = " ".join(text.split())
    text = " ".join(_visible_text(text).split())  # NFC may not create joiners, but be sure
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_CACHED_LENGTH = 1000
"""Names up to this length are cleaned once per process (``_cached_name``): a flood of
replies and likes repeats the same few thousand authors, and cleaning one costs about
0.1 ms, character by character."""
_cached_name = functools.lru_cache(maxsize=4096)(_display_name)


def host_label(url: str) -> str:
    """The host (and non-default port) of ``url`` as shown: lowercase, IDNA-encoded."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    try:
        host = host.encode("idna").decode("ascii") if host else ""
    except UnicodeError:
        host = host.encode("ascii", "backslashreplace").decode("ascii")
    if port is not None and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return host.lower()


def handle_of(actor_id: str, username: Any) -> str:
    """``@user@host`` with the cleaned username and the real host of ``actor_id``; "" when
    there is no usable username."""
    user = "".join(display_name(username, 10 * MAX_USERNAME).split()).replace("@", "")
    host = host_label(actor_id)
    if not user or not host:
        return ""
    if len(user) > MAX_USERNAME:
        user = user[: MAX_USERNAME - 1] + "…"
    return f"@{user}@{host}"
