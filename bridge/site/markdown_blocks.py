"""Python-Markdown's block parser, made cheaper and left byte-identical.

For every block of a post (a paragraph, a list, a heading...) the stock parser asks each
block processor in turn whether the block is its kind, and most answers are a regular
expression that finds nothing: is it a heading (``#``), a table (``|``), a definition
list (``: ``), a block quote (``>``), a footnote or a link reference definition?  With
``extra`` that is about fifteen questions a block.

``PrescanBlockParser`` leaves out a processor when the block lacks every literal its
question needs (``NEEDS``), which is the answer the processor would give: each listed
``test`` is a search of the block (or, for tables, a split on ``|``) with no effect when it
fails, and each listed ``run`` of a processor whose ``test`` is always true (footnotes,
abbreviations, references) puts the block back untouched and returns False when its
search fails, which makes the parser go on to the next processor.  A processor is listed
by its class and the source of its expression, so a changed expression in a later
Python-Markdown release turns the shortcut off instead of making it wrong.

``tests/site/test_markdown_inline.py`` renders the sample site, a generated corpus and
tricky cases with the stock parser and with this one and compares the bytes, and checks
each listed literal against random blocks.
"""

from __future__ import annotations

from typing import Any

import markdown
from markdown import blockparser, blockprocessors
from markdown.extensions import abbr, def_list, footnotes, sane_lists, tables

# (processor class, source of the expression its test or run searches) -> literals, one of
# which a block must hold for that search to find anything.
NEEDS: dict[tuple[type[Any], str | None], tuple[str, ...]] = {
    (
        blockprocessors.HashHeaderProcessor,
        r"(?:^|\n)(?P<level>#{1,6})(?P<header>(?:\\.|[^\\#]|#+(?=[^#\n]))*?)#*(?:\n|$)",
    ): ("#",),
    (blockprocessors.SetextHeaderProcessor, r"^.*?\n(?:=+|-+)[ ]*(\n|$)"): ("\n=", "\n-"),
    (
        blockprocessors.HRProcessor,
        r"^[ ]{0,3}(?=(?P<atomicgroup>(-+[ ]{0,2}){3,}|(_+[ ]{0,2}){3,}|(\*+[ ]{0,2}){3,}))"
        r"(?P=atomicgroup)[ ]*$",
    ): ("-", "_", "*"),
    (sane_lists.SaneOListProcessor, r"^[ ]{0,3}\d+\.[ ]+(.*)"): (". ",),
    (sane_lists.SaneUListProcessor, r"^[ ]{0,3}[*+-][ ]+(.*)"): ("* ", "+ ", "- "),
    (def_list.DefListProcessor, r"(^|\n)[ ]{0,3}:[ ]{1,3}(.*?)(\n|$)"): (": ",),
    (blockprocessors.BlockQuoteProcessor, r"(^|\n)[ ]{0,3}>[ ]?(.*)"): (">",),
    (footnotes.FootnoteBlockProcessor, r"^[ ]{0,3}\[\^([^\]]*)\]:[ ]*(.*)$"): ("[^",),
    (abbr.AbbrBlockprocessor, r"^[*]\[(?P<abbr>[^\\]*?)\][ ]?:[ ]*\n?[ ]*(?P<title>.*)$"): ("*[",),
    (
        blockprocessors.ReferenceProcessor,
        r"^[ ]{0,3}\[([^\[\]]*)\]:[ ]*(?:\n[ ]*)?([^\s]+)[ ]*(?:\n[ ]*)?"
        r'((["\'])(.*)\4[ ]*|\((.*)\)[ ]*)?$',
    ): ("]:",),
    (tables.TableProcessor, None): ("|",),  # a header row of cells, or a border, needs one
}


def _regex_source(processor: Any) -> str | None:
    regex = getattr(processor, "SEARCH_RE", None) or getattr(processor, "RE", None)
    return getattr(regex, "pattern", None)


def needs(processor: Any) -> tuple[str, ...]:
    """The literals one of which a block needs for ``processor``; () when not listed."""
    found = NEEDS.get((type(processor), _regex_source(processor)))
    if found is None:
        found = NEEDS.get((type(processor), None), ())
    return found


class PrescanBlockParser(blockparser.BlockParser):
    """``BlockParser`` whose loop skips the processors a block's literals rule out."""

    _plan: tuple[int, list[tuple[Any, tuple[str, ...]]]] = (-1, [])

    def parseBlocks(self, parent: Any, blocks: list[str]) -> None:
        count, table = self._plan
        if count != len(self.blockprocessors):  # made once; the registry is fixed by then
            table = [(p, needs(p)) for p in self.blockprocessors]
            self._plan = (len(table), table)
        while blocks:
            for processor, literals in table:
                if literals:
                    block = blocks[0]
                    for literal in literals:
                        if literal in block:
                            break
                    else:
                        continue  # the stock loop would get False from this processor
                if processor.test(parent, blocks[0]) and processor.run(parent, blocks) is not False:
                    break


def install(md: markdown.Markdown) -> None:
    """Make ``md``'s block parser a ``PrescanBlockParser`` (a stock one only)."""
    if type(md.parser) is blockparser.BlockParser:
        md.parser.__class__ = PrescanBlockParser
