"""The site's converter imports ``fenced_code`` without Pygments, and changes no output.

Each case runs in a fresh interpreter (one thread, nothing imported yet), as a command
does: what the deferred import does depends on what the process has loaded before.
"""

from __future__ import annotations

import pytest

from tests.fresh import run_json

FENCED = (
    "Text\n\n```python\ndef f(x):\n    return x  # comment\n```\n\n"
    '~~~ {.js #id hl_lines="1"}\nlet a = 1;\n~~~\n\n```\nplain\n```\n'
)

SITE = f"""
import json, sys
from bridge.site.markdown_render import new_converter
html = new_converter().convert({FENCED!r})
print(json.dumps({{"html": html, "pygments": "pygments" in sys.modules}}))
"""

STOCK = f"""
import json, sys, markdown
from bridge.site.markdown_render import MD_EXTENSIONS
html = markdown.Markdown(extensions=MD_EXTENSIONS, output_format="html").convert({FENCED!r})
print(json.dumps({{"html": html, "pygments": "pygments" in sys.modules}}))
"""

# codehilite registered on another converter, after the site's converter (deferred names)
# or alone (the stock import): the same highlighted HTML.
HILITE = """
import json, markdown
{before}
md = markdown.Markdown(extensions=["fenced_code", "codehilite"])
print(json.dumps({{"html": md.convert({text!r})}}))
"""


def test_the_site_converter_does_not_import_pygments_and_renders_the_same() -> None:
    site, stock = run_json(SITE), run_json(STOCK)
    assert site["pygments"] is False
    assert stock["pygments"] is True  # what the stock import costs
    assert site["html"] == stock["html"]
    assert "<code" in str(site["html"])


@pytest.mark.parametrize("lang", ["python", "no-such-language", ""])
def test_codehilite_on_another_converter_highlights_as_before(lang: str) -> None:
    pytest.importorskip("pygments")
    text = f"```{lang}\ndef f(x):\n    return x\n```\n"
    site_first = "from bridge.site.markdown_render import new_converter; new_converter()"
    after = run_json(HILITE.format(before=site_first, text=text))
    alone = run_json(HILITE.format(before="", text=text))
    assert after == alone
    assert 'class="codehilite"' in str(alone["html"])
