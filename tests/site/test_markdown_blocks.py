"""The prescanning block parser renders exactly the bytes of Python-Markdown's stock one.

The sample site and a generated corpus are compared in test_markdown_inline.py (the
converter there has both shortcuts); here: block-level cases that reach every listed
processor, and each listed literal checked against random blocks.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as etree

import markdown
import pytest

from bridge.site import markdown_blocks
from bridge.site.markdown_render import MD_EXTENSIONS, new_converter

BLOCKS = [
    "# One\n## Two ##\n###### Six\n####### seven\n#no space\n\\# escaped",
    "Setext one\n==========\n\nSetext two\n---\n\nNot setext\n- - -\n\nText\n=",
    "---\n\n***\n\n___\n\n- - -\n\n * * *\n\n--\n\n-- -",
    "1. one\n2. two\n\n3) not sane\n\n10. ten\n1.no space\n\n 1. indented",
    "- a\n- b\n\n* c\n+ d\n\n-not a list\n\n- a\n\n    nested para\n\n        code in item",
    "Term\n: def one\n\nTerm 2\n:   def two\n    more\n\n:no space\n\nx: y and z : w",
    "> quote\ncontinued lazily\n\n> > nested\n> - list in quote\n\n>no space\n\na > b",
    "Text[^n] and [^m].\n\n[^n]: Note one\n    indented more\n[^m]: Note two\n\n[^x] not a def",
    "*[HTML]: Hyper Text\n*[W3C]:  World Wide Web Consortium\n\nHTML and W3C. *[not]: x",
    "[a]: https://e.org/a 'Title'\n[b]: <https://e.org/b> \"T\"\n[c]: https://e.org/c\n  (T)\n\n"
    "[a] [b] [c] [d]: not a def because text before",
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n\na | b\n--|--\n1 | 2\n\n| one |\n| --- |\n| x |",
    "a | b\nnot a separator\n\n|x\n|-\n\n| a |\n|---\nrow\n\nx|y\n-|-|-",
    "    code block\n    more\n\n\tcode with tab\n\ntext\n    not code (lazy)",
    '<div>\n*raw* html block\n</div>\n\n<p markdown="1">*md* in html</p>\n\ntext <b>inline</b>',
    "```\nfenced | with > and # and ---\n```\n\n~~~python\n: not a def\n~~~",
    "para one\npara one cont.\n\n\n\npara two  \nbreak\n\n",
    "- item\n\n    > quote in item\n\n    | a | b |\n    |---|---|\n    | 1 | 2 |\n\n- item 2",
    "1. a\n    1. nested\n    2. nested\n2. b\n\n    ---\n\n    # heading in item",
    "Para {: #id .cls }\n\n# Heading {: #h }\n\n- item {: .x }",
]


def stock() -> markdown.Markdown:
    return markdown.Markdown(extensions=MD_EXTENSIONS, output_format="html")


def test_parser_is_prescanning_and_every_listed_processor_is_in_use() -> None:
    md = new_converter()
    assert type(md.parser) is markdown_blocks.PrescanBlockParser
    used = {(type(p), markdown_blocks._regex_source(p)) for p in md.parser.blockprocessors}
    used |= {(type(p), None) for p in md.parser.blockprocessors}
    assert set(markdown_blocks.NEEDS) <= used  # a key no processor has would be dead


def test_block_cases_identical() -> None:
    a, b = stock(), new_converter()
    texts = [*BLOCKS, "\n\n".join(BLOCKS), *(f"- {t}" for t in BLOCKS)]
    texts += [
        *(f"> {t}" for t in BLOCKS),
        *("\n".join("    " + x for x in t.split("\n")) for t in BLOCKS),
    ]
    for text in texts:
        assert b.reset().convert(text) == a.reset().convert(text), text


def test_random_block_soup_identical() -> None:
    rng = random.Random(1616)
    pieces = [
        "a",
        " ",
        "\n",
        "\n\n",
        "#",
        "-",
        "=",
        "*",
        "_",
        "|",
        ":",
        ">",
        "1.",
        "[^",
        "]:",
        "*[",
    ]
    pieces += ["    ", "- ", ". ", ": ", "[a]", "(u)", "---", "| a |", "\n|---|\n", "`", "<div>"]
    a, b = stock(), new_converter()
    for _ in range(600):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        assert b.reset().convert(text) == a.reset().convert(text), text


def _processors() -> list[object]:
    return list(new_converter().parser.blockprocessors)


@pytest.mark.parametrize(
    "key", sorted(markdown_blocks.NEEDS, key=lambda k: (k[0].__name__, k[1] or "")), ids=str
)
def test_listed_literals_are_needed(key: tuple[type, str | None]) -> None:
    """No block without one of a processor's literals gets a yes from it."""
    [processor] = [
        p
        for p in _processors()
        if type(p) is key[0] and (key[1] is None or markdown_blocks._regex_source(p) == key[1])
    ]
    literals = markdown_blocks.NEEDS[key]
    rng = random.Random(str(key))
    pieces = [*"a #-=*_|:>.[]^(): \n\t\"'1", "\n\n", "    ", "- ", ". ", ": ", "[^", "]:", "*["]
    pieces += ["---", "|---|", "\n=", "\n-", "[a]: u", "1. ", "| a | b |\n", "-|-"]
    found = 0
    for _ in range(4000):
        block = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 16)))
        if key[1] is None:  # the table processor: its own test
            yes = bool(processor.test(etree.Element("div"), block))  # type: ignore[attr-defined]
        else:
            regex = getattr(processor, "SEARCH_RE", None) or processor.RE  # type: ignore[attr-defined]
            yes = regex.search(block) is not None
        found += yes
        if yes:
            assert any(lit in block for lit in literals), (key, block)
    assert found > 0  # the pieces do reach the processor


def test_a_parser_someone_else_replaced_is_left_alone() -> None:
    class Other(markdown.blockparser.BlockParser):
        pass

    md = stock()
    md.parser.__class__ = Other
    markdown_blocks.install(md)
    assert type(md.parser) is Other
