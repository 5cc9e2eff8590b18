"""Inline hashtags: ``#word`` in a post's rendered text becomes a tag and a link.

A pure converter over the HTML that Markdown produced.  It walks the text between tags
(outside ``<a>``, ``<code>``, ``<pre>`` and the other elements in ``_SKIP``), finds
hashtags there, links each to the site's tag page and returns the tag names, which join
the post's front matter tags: the post is then listed on that tag page and federates a
``Hashtag`` for it (``bridge.site.activities``).

Facts relied on:

* Mastodon finds a hashtag where ``#`` is not preceded by a letter, a digit, ``=``, ``/``
  or ``)`` (``HASHTAG_RE`` in mastodon/mastodon's ``app/models/tag.rb``), so the ``#`` of
  a URL fragment (``page#top``, ``/#/route``) is not a hashtag; ``&#123;`` (a character
  reference) is excluded the same way, by refusing a ``#`` after ``&``.
* a name is letters, digits, ``_`` and ``·``, with at least one letter
  (``HASHTAG_NAME_PAT`` in ``app/models/tag.rb``; ``#2026`` and ``#123`` are not tags);
  the ``Hashtag`` then carries ``bridge.site.hashtags.hashtag_name`` of the word.
* Mastodon renders a hashtag as ``<a href="…/tags/x" class="mention hashtag" rel="tag">
  #<span>x</span></a>`` (``TextFormatter#link_to_hashtag`` in ``app/lib/text_formatter.rb``)
  and its sanitiser keeps the ``mention`` and ``hashtag`` classes of remote content
  (``lib/sanitize_ext/sanitize_config.rb``); the links here have the same class and
  ``rel``, without the inner ``<span>``: excerpts and link previews replace each tag with
  a space, and would read ``# x``.
* In Markdown, ``# Title`` at the start of a line is a heading, so its ``#`` never
  reaches the text.  Python-Markdown makes a heading of ``#word`` at a line start too
  (it needs no space after ``#``): start such a line with ``\\#word`` to make it a hashtag.

Unlike Mastodon, a hashtag must be a whole word: ``#C++``, ``#node.js`` and ``#foo-bar``
are left as text rather than tagged ``#C``, ``#node`` or ``#foo``, since those would be
tags the author did not mean.  A word may be followed by sentence punctuation (``#tag.``,
``(#tag)``, ``“#tag”``) or a possessive ``’s``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from bridge.config import SiteConfig
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import Post, tag_slug

# Elements whose text is never scanned: links (a hashtag inside a link would be a link in
# a link), code, and text that is not prose.
_SKIP = frozenset({"a", "code", "pre", "kbd", "samp", "script", "style", "textarea", "title"})

_PUNCT = r"(?:[.,;:!?…)\]}\"'»”’]|&(?:quot|rsquo|rdquo|raquo|hellip|#39|#x27|#8217|#8221);)"
_POSSESSIVE = r"(?:['’]|&rsquo;|&#39;|&#x27;|&#8217;)s"
# A hashtag ends at a space, the end of the text or the start of markup, after optional
# punctuation.
_END = rf"(?:{_POSSESSIVE})?{_PUNCT}*(?:\s|&nbsp;|&#160;|<|$)"
# The ``#`` comes first so that a search skips to it; then a look back at the character
# before it.
_HASHTAG = rf"#(?<![\w&/=)#\]\\]#)(?P<name>[\w·]*\w)(?={_END})"
# One pass over the HTML finds both: a comment or a tag with its attributes (quoted
# values may hold ``>``; a ``#`` there is never a hashtag), and hashtags in the text.
# Possessive quantifiers (Python 3.11+) keep a tag that never closes from backtracking.
_TOKEN = re.compile(
    rf"(?P<markup><!--.*?-->|<(?=[A-Za-z/!?])(?P<close>/?)(?P<element>[A-Za-z][\w-]*)?"
    rf"(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>)|{_HASHTAG}",
    re.DOTALL,
)
_CANDIDATE = re.compile(_HASHTAG)


@dataclass(frozen=True)
class Tagged:
    """The HTML with its hashtags linked, and their names in the order they first appear."""

    html: str
    tags: tuple[str, ...]


def link_hashtags(source: str, tag_url: Callable[[str], str]) -> Tagged:
    """Link every inline hashtag of ``source`` (HTML) to ``tag_url(name)``.

    ``tag_url`` maps a hashtag name to its page's URL.  HTML without a hashtag comes back
    unchanged, byte for byte.
    """
    if _CANDIDATE.search(source) is None:  # most posts: no need to look at the markup
        return Tagged(source, ())
    names: dict[str, str] = {}  # casefolded -> as first written
    skipping: dict[str, int] = dict.fromkeys(_SKIP, 0)  # open elements, by name

    def token(m: re.Match[str]) -> str:
        if m.group("markup") is not None:
            element = (m.group("element") or "").lower()
            if element in skipping and not m.group(0).endswith("/>"):
                skipping[element] = max(skipping[element] + (-1 if m.group("close") else 1), 0)
            return m.group(0)
        if any(skipping.values()):
            return m.group(0)
        return _link(m, tag_url, names)

    return Tagged(_TOKEN.sub(token, source), tuple(names.values()))


def _link(m: re.Match[str], tag_url: Callable[[str], str], names: dict[str, str]) -> str:
    name = m.group("name")
    if hashtag_name(name) is None:  # no letter: ``#2026``, ``#123``
        return m.group(0)
    names.setdefault(name.casefold(), name)
    href = html.escape(tag_url(name), quote=True)
    return f'<a href="{href}" class="mention hashtag" rel="tag">#{name}</a>'


def tag_post(post: Post, config: SiteConfig) -> Post:
    """``post`` with its inline hashtags linked and added to its tags (front matter tags
    first; a hashtag naming the same tag page as one of them is not added twice)."""
    found = link_hashtags(post.html, lambda name: config.tag_url(tag_slug(name)))
    if found.html == post.html:
        return post
    seen = {tag_slug(tag) for tag in post.tags}
    extra: list[str] = []
    for tag in found.tags:
        if tag_slug(tag) not in seen:
            seen.add(tag_slug(tag))
            extra.append(tag)
    return replace(post, html=found.html, tags=post.tags + tuple(extra))
