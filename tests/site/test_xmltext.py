"""``bridge.site.xmltext`` writes what ``xml.sax.saxutils`` writes."""

from __future__ import annotations

from xml.sax import saxutils

import pytest

from bridge.site import xmltext

CASES = [
    "",
    "plain",
    "a & b < c > d",
    "&amp; already escaped",
    'say "hi"',
    "it's",
    "both \" and '",
    "line\nbreak\rand\ttab",
    "<script>alert('x\")</script>",
    "ünïcödé ✓ \U0001f600",
]


@pytest.mark.parametrize("text", CASES)
def test_escape_matches_saxutils(text: str) -> None:
    assert xmltext.escape(text) == saxutils.escape(text)


@pytest.mark.parametrize("text", CASES)
def test_quoteattr_matches_saxutils(text: str) -> None:
    assert xmltext.quoteattr(text) == saxutils.quoteattr(text)
