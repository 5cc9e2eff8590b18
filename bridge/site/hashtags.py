"""A post's tags as hashtag names Mastodon accepts.

Mastodon recognises a hashtag name made of letters, digits, ``_`` and ``·`` (U+00B7) that
is not all digits (``HASHTAG_NAME_PAT`` in ``app/models/tag/naming.rb``: ``[[:word:]]``
characters, with the separators ``_ · ・ U+200C`` between them, and at least one
``[[:alpha:]]``); a ``Hashtag`` whose name does not match is dropped.  So a tag is
turned into a name:

* NFKC-normalised, then split into words at every other character (spaces, ``+``,
  ``-``, ``.``, ``#``...; ``·`` only inside a word): ``Interop Test`` -> ``Interop``,
  ``Test``;
* the words joined, each after the first starting with a capital (``#InteropTest``, as
  people write multi-word hashtags, which also reads well with screen readers);
  ``C++`` -> ``#C``, ``Ĉu ne?`` -> ``#ĈuNe``;
* a tag that leaves no letter (``2026``, ``+++``) has no name: ``content.load`` stops with
  one line naming the file and the tag.

The name corresponds to the tag's page on the site: casefolded and without ``_`` and ``·``,
it is the tag slug (``posts.tag_slug``) without its dashes; the ``Hashtag``'s ``href`` is
that page.
"""

from __future__ import annotations

import re
import unicodedata

_SPLIT = re.compile(r"[^\w·]+")  # anything but letters, digits, ``_`` and ``·``


def hashtag_name(tag: str) -> str | None:
    """The hashtag name (without ``#``) for ``tag``, or None when none can be made."""
    words = [w.strip("·") for w in _SPLIT.split(unicodedata.normalize("NFKC", tag))]
    words = [w for w in words if w]
    name = "".join(w if i == 0 else w[:1].upper() + w[1:] for i, w in enumerate(words))
    if not any(ch.isalpha() for ch in name):
        return None
    return name
