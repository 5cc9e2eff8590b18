"""Python-Markdown's inline pass, made cheaper and left byte-identical.

Python-Markdown applies inline patterns one at a time to every text of the tree: for each
pattern it calls a Python method that looks the pattern up in its registry, checks the
ancestors and starts a ``finditer``.  With ``extra`` and ``smarty`` that is about 40
patterns (two passes: the inline patterns, then ``smarty``'s own quotes, dashes and
ellipses), about 2,000 Python calls for an ordinary post, and most of them find nothing:
a post without a quotation mark still pays for every quote pattern on every paragraph.
That was half of a post's Markdown time.

``PrescanInlineProcessor`` first looks, per text, which of a few literals it holds (every
quote pattern needs a quotation mark, a link a ``[``, emphasis a ``*`` or ``_``: ``NEEDS``)
and leaves out the patterns that need an absent one.  For each pattern left it asks the
pattern's own compiled expression, in C, whether it matches anywhere from the current
position, and goes on to the next pattern at once when it does not.  That is exactly what
the stock code concludes for such a pattern: for a pattern of the new style
(``inlinepatterns.InlineProcessor``), ``__applyPattern`` runs ``finditer`` over the same
text from the same position, and with no match it returns the text unchanged, unmatched,
with the position reset to 0.  When the expression does match, the stock method runs as
before (it may still reject the match).  Patterns of the old style are always handed to
the stock method.

The stock class keeps its loop in a private (name-mangled) method, so the replacement
overrides ``_InlineProcessor__handleInline``; when a Python-Markdown release renames it,
``PrescanExtension`` leaves the stock processors in place (slower, never different).
``tests/site/test_markdown_inline.py`` renders the sample site, a generated corpus and
tricky inline cases with and without it and compares the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import markdown
from markdown import inlinepatterns, treeprocessors, util
from markdown.extensions import Extension, smarty

from bridge.site import markdown_blocks

_HANDLE = "_InlineProcessor__handleInline"
_APPLY = "_InlineProcessor__applyPattern"

# The stock processors this replaces, with the priorities Python-Markdown registers them
# at (documented in ``markdown.treeprocessors.build_treeprocessors`` and the ``smarty``
# extension's ``extendMarkdown``).
REPLACED = {"inline": 20.0, "smarty": 6.0}

Search = Callable[[str, int], re.Match[str] | None]

# Characters without which an expression cannot match, by the expression's source: a text
# holding none of them skips the pattern on a substring test, before any regex runs.
# Expressions not named here are searched directly.
_SMARTY_QUOTES = {
    smarty.singleQuoteStartRe: ("'",),
    smarty.doubleQuoteStartRe: ('"',),
    smarty.doubleQuoteSetsRe: ("\"'",),
    smarty.singleQuoteSetsRe: ("'\"",),
    smarty.doubleQuoteSetsRe2: ("'\"",),
    smarty.singleQuoteSetsRe2: ("\"'",),
    smarty.decadeAbbrRe: ("'",),
    smarty.openingSingleQuotesRegex: ("'",),
    smarty.closingSingleQuotesRegex: ("'",),
    smarty.closingSingleQuotesRegex2: ("'",),
    smarty.remainingSingleQuotesRegex: ("'",),
    smarty.openingDoubleQuotesRegex: ('"',),
    smarty.closingDoubleQuotesRegex: ('"',),
    smarty.closingDoubleQuotesRegex2: ('"',),
    smarty.remainingDoubleQuotesRegex: ('"',),
}
NEEDS: dict[str, tuple[str, ...]] = {
    **_SMARTY_QUOTES,
    r"(?<!-)---(?!-)": ("---",),  # smarty's dashes and ellipses
    r"(?<!-)--(?!-)": ("--",),
    r"(?<!\.)\.{3}(?!\.)": ("...",),
    inlinepatterns.BACKTICK_RE: ("`",),  # both branches need a backtick
    inlinepatterns.NOIMG + r"\[": ("[",),  # links and references
    r"\!\[": ("![",),  # images
    r"\[\^([^\]]*)\]": ("[^",),  # footnote references (``extra``)
    inlinepatterns.LINE_BREAK_RE: ("  \n",),
    inlinepatterns.ENTITY_RE: ("&",),
    inlinepatterns.AUTOLINK_RE: ("<",),
    inlinepatterns.AUTOMAIL_RE: ("<",),
    inlinepatterns.HTML_RE: ("<",),
    inlinepatterns.ESCAPE_RE: ("\\",),
    r"\*|_": ("*", "_"),  # emphasis
}


TESTED_MAJOR = 3
"""The Python-Markdown major release whose private inline loop this was written against
and whose output the tests compare; another major release gets the stock processors."""


def available() -> bool:
    """Whether this Python-Markdown is the tested major release and has the private
    methods the fast path builds on."""
    stock = treeprocessors.InlineProcessor
    return (
        markdown.__version_info__[0] == TESTED_MAJOR
        and callable(getattr(stock, _HANDLE, None))
        and callable(getattr(stock, _APPLY, None))
    )


class PrescanInlineProcessor(treeprocessors.InlineProcessor):
    """``InlineProcessor`` that skips, in C, the patterns that cannot match a text."""

    def __init__(self, md: markdown.Markdown, patterns: util.Registry[Any]) -> None:
        super().__init__(md)
        self.inlinePatterns = patterns
        self._table: list[tuple[Any, Search | None, tuple[str, ...]]] = []
        self._literals: tuple[str, ...] = ()
        self._plans: dict[tuple[str, ...], list[int]] = {}

    def run(self, tree: Any, ancestors: list[str] | None = None) -> Any:
        # The registry is sorted and fixed once the extensions are set up: the table and
        # the plans are kept from one conversion to the next while it holds the same items.
        patterns = list(self.inlinePatterns)
        if [p for p, _, _ in self._table] != patterns:
            table: list[tuple[Any, Search | None, tuple[str, ...]]] = []
            for p in patterns:
                if isinstance(p, inlinepatterns.InlineProcessor):
                    regex = p.getCompiledRegExp()
                    table.append((p, regex.search, NEEDS.get(regex.pattern, ("",))))
                else:
                    table.append((p, None, ("",)))
            self._table = table
            self._literals = tuple(sorted({lit for _, _, need in table for lit in need if lit}))
            self._plans = {}
        return super().run(tree, ancestors)

    def _plan(self, present: tuple[str, ...]) -> list[int]:
        """The indexes of the patterns that can match a text holding the ``present``
        literals (and none of the others): the rest are skipped without a call."""
        plan = [
            i
            for i, (_, search, needs) in enumerate(self._table)
            if search is None or any(lit == "" or lit in present for lit in needs)
        ]
        self._plans[present] = plan
        return plan

    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:
        if isinstance(data, util.AtomicString):
            return data
        present = tuple([lit for lit in self._literals if lit in data])
        plan = self._plans.get(present)
        if plan is None:
            plan = self._plan(present)
        table = self._table
        apply = getattr(self, _APPLY)
        # Literals only ever leave the text (a match becomes a placeholder of letters and
        # digits), so a pattern left out of the plan stays unable to match.
        for index in plan:
            if index < patternIndex:
                continue
            pattern, search, _ = table[index]
            startIndex = 0  # the stock method's names, to compare them
            while search is None or search(data, startIndex) is not None:
                data, matched, startIndex = apply(pattern, data, index, startIndex)
                if not matched:
                    break  # and __applyPattern reset the position to 0: the next pattern
        return data


class PrescanExtension(Extension):
    """Replace the ``inline`` and ``smarty`` tree processors with prescanning ones, and
    the block parser with ``markdown_blocks.PrescanBlockParser``.

    List it after the extensions whose patterns it should see (``smarty`` registers its
    processor in its own ``extendMarkdown``).
    """

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        markdown_blocks.install(md)
        if not available():
            return
        for name, priority in REPLACED.items():
            if name not in md.treeprocessors:
                continue
            stock = md.treeprocessors[name]
            if type(stock) is not treeprocessors.InlineProcessor:
                continue  # someone else's subclass: leave it alone
            md.treeprocessors.register(
                PrescanInlineProcessor(md, stock.inlinePatterns), name, priority
            )
