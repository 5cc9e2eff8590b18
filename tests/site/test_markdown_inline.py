"""The prescanning inline pass renders exactly the bytes of Python-Markdown's stock one.

Compared on the sample site, a generated benchmark corpus and inline cases chosen to hit
every pattern (smart punctuation next to code, escapes, HTML, links, entities, emphasis,
footnotes, abbreviations, attribute lists).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import markdown
import pytest

from benchmarks import corpus
from bridge.site import markdown_inline
from bridge.site.content import split_front_matter
from bridge.site.markdown_render import MD_EXTENSIONS, new_converter

ROOT = Path(__file__).resolve().parents[2]

TRICKY = [
    "\"Hello,\" she said. 'It's fine,' he replied -- didn't he?",
    "In the '90s and '80s we said \"rock 'n' roll\"... and 'tis so.",
    "He said, \"'Quoted' words in a larger quote.\" Then '\"nested\"'.",
    "'Start with a quote' and \"start\" -- then --- and ---- and -- -",
    "Ellipses... and .... and . . . and ..",
    'A `code "span" with \'quotes\'` and "quotes `next` to" code.',
    "`code`'s apostrophe, \"`quoted code`\", '`single`' and ``double `tick` code``",
    "Escapes: \\\"not smart\\\" and \\'not either\\' and \\*stars\\* and \\`tick\\`",
    "Links: [a \"quoted\" link](https://example.org/ \"a 'title'\") and [it's](/x 'T').",
    '![an \'image\' "alt"](/img.png "title\'s") and [ref][r] and [r] and ![img ref][r]\n\n'
    "[r]: https://example.org/ref \"Ref 'title'\"",
    "<span title=\"a 'b'\">inline \"html\" it's</span> and <b>bold</b> 'after'",
    '<div class="x">\nA "block" of HTML -- it\'s raw...\n</div>\n\nAfter the "block".',
    'Entities: &amp; &copy; &#8212; &mdash;\'s &nbsp;"quoted" &#8211;\'s --"x"',
    "*emphasis with 'quotes'* and **strong \"quotes\"** and ***both*** and _under_ and __dbl__",
    "*nested **strong 'inside'** emphasis* and **bold *em \"x\"* bold**",
    "snake_case_words and 2*3*4 and a * b * c and _a_b_c_",
    "Line with two spaces  \nbreak, then 'quote'.",
    'Autolinks <https://example.org/a?b="c"> and <me@example.org> and <not a link>',
    "Footnote[^1] with 'quotes'.\n\n[^1]: The \"note\" -- it's here...",
    "*[HTML]: Hyper Text Markup Language\n\nThe HTML 'spec' says \"HTML\".",
    "A paragraph with attributes 'yes' {: #anchor .class }",
    "Term 'one'\n:   Definition \"one\" -- it's\n\nTerm\n:   Other...",
    "| a 'b' | \"c\" |\n|---|---|\n| it's | --- |",
    "```python\nx = \"not 'smart'\" -- ...\n```\n\nAfter 'code'.",
    "    indented \"code\" -- ...\n\nthen 'prose'",
    "> a 'quoted' block\n> with \"quotes\" -- and...\n\n- 'list' item\n- \"another\" -- one",
    "1. first 'one'\n2. second\n\n   nested \"para\"",
    "Trailing quote'\n\n\"Leading\n\n'\n\n\"\n\n''\"\"'\"",
    "Quotes after dashes: --'word' ---\"word\" –'x' —\"y\" &ndash;'z' &#8212;\"w\"",
    "It's 'the '90s' and the 1990's, isn't it? 'Twas. Rock'n'roll.",
    "Punctuation '!start and \"?start and '.' and \",\" and (\"paren\") and ['br']",
    '<div markdown="1">\nInside *md_in_html* with "quotes".\n</div>',
    "Tabs\tand 'tabs'\t\"here\"",
    "Unicode “curly” ‘quotes’ and 'straight' … and – —",
    "\\\\`escaped backslash then code` and \\\\\\`not code\\\\`",
    "[link *with* `code` and 'q'](https://e.org/a_b_c) and [`only code`](/x)",
    "[^missing] footnote ref and [^] and [ ^1]",
    "a<b and c>d and <!-- comment 'x' --> and <?php 'x' ?> and <![CDATA[ 'x' ]]>",
]


def stock() -> markdown.Markdown:
    return markdown.Markdown(extensions=MD_EXTENSIONS, output_format="html")


def _assert_same(texts: list[str]) -> None:
    a, b = stock(), new_converter()
    for text in texts:
        assert b.reset().convert(text) == a.reset().convert(text), text[:200]


def test_prescan_is_in_use() -> None:
    md = new_converter()
    assert markdown_inline.available()
    for name in markdown_inline.REPLACED:
        assert type(md.treeprocessors[name]) is markdown_inline.PrescanInlineProcessor
    # same processors, same order, same inline patterns
    assert [type(p).__name__ for p in stock().treeprocessors] == [
        type(p).__name__.replace("PrescanInlineProcessor", "InlineProcessor")
        for p in md.treeprocessors
    ]
    assert [p.getCompiledRegExp().pattern for p in md.inlinePatterns] == [
        p.getCompiledRegExp().pattern for p in stock().inlinePatterns
    ]


def test_stock_processors_kept_when_the_private_loop_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(markdown_inline, "available", lambda: False)
    md = new_converter()
    for name in markdown_inline.REPLACED:
        assert type(md.treeprocessors[name]) is markdown.treeprocessors.InlineProcessor
    assert md.convert('It\'s "fine" -- really...') == stock().convert('It\'s "fine" -- really...')


def test_another_major_release_gets_the_stock_processors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(markdown, "__version_info__", (markdown_inline.TESTED_MAJOR + 1, 0, 0))
    assert not markdown_inline.available()
    md = new_converter()
    for name in markdown_inline.REPLACED:
        assert type(md.treeprocessors[name]) is not markdown_inline.PrescanInlineProcessor


def _patterns() -> dict[str, re.Pattern[str]]:
    md = new_converter()
    found = {}
    for name in markdown_inline.REPLACED:
        for pattern in md.treeprocessors[name].inlinePatterns:
            regex = pattern.getCompiledRegExp()
            found[regex.pattern] = regex
    return found


def test_every_needed_literal_names_a_pattern_in_use() -> None:
    """A key that matches no pattern would silently lose the fast path."""
    assert set(markdown_inline.NEEDS) <= set(_patterns())


def test_tricky_inline_cases_identical() -> None:
    _assert_same(TRICKY)
    # and each case inside other block contexts, where ancestors differ
    _assert_same([f"- {t}" for t in TRICKY] + [f"> {t}" for t in TRICKY])
    _assert_same(["\n\n".join(TRICKY)])


def test_sample_site_identical() -> None:
    files = sorted((ROOT / "content").rglob("*.md"))
    assert len(files) >= 5
    bodies = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        bodies.append(split_front_matter(text, str(path))[1])
    _assert_same(bodies)


def test_benchmark_corpus_identical() -> None:
    _assert_same([post.body for post in corpus.posts(300)])


def test_random_punctuation_soup_identical() -> None:
    rng = random.Random(16)
    alphabet = [*"ab '\"-.`*_[]()!<>&;#\\:\n 90s", "--", "...", "&mdash;", "\n\n"]
    _assert_same(["".join(rng.choice(alphabet) for _ in range(80)) for _ in range(400)])


@pytest.mark.parametrize("source", sorted(markdown_inline.NEEDS))
def test_needed_literals_are_needed(source: str) -> None:
    """No text without one of a pattern's literals matches it (the skip is exact)."""
    regex = _patterns()[source]
    needs = markdown_inline.NEEDS[source]
    rng = random.Random(source)
    alphabet = list("a Z0 9s'\"-.`*_[]^()!<>&;#/\\:=@\t\n\u2013\u2014")
    alphabet += ["&nbsp;", "--", "...", "'9", "90s", "  \n", "[^", "![", "<b>", "&amp;"]
    alphabet += ["<a@b.c>", "<https://e.org>", "<!-- c -->", "``", "\\\\"]
    matched = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        hit = regex.search(text) is not None
        matched += hit
        if hit:
            assert any(lit in text for lit in needs), (source, text)
    assert matched > 0  # the alphabet does reach the pattern
