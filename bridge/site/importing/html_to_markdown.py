"""HTML -> the Markdown the site renders (Python-Markdown with ``extra``, ``sane_lists``).

Faithful where Python-Markdown can say the same thing, raw HTML where it cannot:

* code blocks are fenced with their language (``class="language-x"``, ``lang-x``,
  ``data-lang``, SyntaxHighlighter's ``brush: x``) and kept byte for byte, blank lines
  included; a fence is longer than any backtick run inside;
* nested lists are indented by four spaces, the indent Python-Markdown requires
  (https://python-markdown.github.io/#differences);
* text that would start a Markdown block (``1986.``, ``#``, ``-``, ``+``, ``>``) is
  escaped, so it stays text;
* ``<sub>``/``<sup>`` stay inline HTML; footnotes (Python-Markdown's, Hugo's goldmark,
  kramdown's and WordPress's footnote block) become ``[^n]`` notes; heading ids become
  ``{#id}`` (attr_list); table column alignment becomes ``:---:`` rows; a figure with a
  caption stays a ``<figure>``;
* iframes, objects and scripts with a source become a link to the embedded thing
  (``embeds``); an inline script or a form is removed with a warning, never silently.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import Comment, NavigableString, Tag
from markdownify import MarkdownConverter

from bridge.site.importing import embeds
from bridge.site.importing.text import TOO_DEEP

_LINE_START = re.compile(
    r"(^|\n)([ \t]*)(#{1,6}(?=\s|$)|[-+](?=\s|$)|-+[ \t]*$|>|\d{1,9}(?=\.(?:\s|$)))"
)
_ID = re.compile(r"^[A-Za-z][\w:.-]*$")
_LANG = re.compile(r"(?:^|\s)(?:language|lang)-([\w+#.-]+)")
_BRUSH = re.compile(r"brush:\s*([\w+#.-]+)")
_CODE_MARK = re.compile(r"\x01(\d+)\x01")
_ALIGN = re.compile(r"text-align\s*:\s*(left|right|center)")


def _escape_line_start(match: re.Match[str]) -> str:
    """``1986.`` -> ``1986\\.``; ``#``, ``-``, ``+``, ``>`` -> backslash first; a line of
    dashes has every dash escaped (else it is a rule, or smarty makes ``--`` a dash)."""
    lead, mark = match.group(1) + match.group(2), match.group(3)
    if mark[0].isdigit():
        return f"{lead}{mark}\\"
    if mark.startswith("-") and mark.strip() != "-":
        return lead + "".join("\\-" if c == "-" else c for c in mark)
    return f"{lead}\\{mark}"


@dataclass(frozen=True)
class Converted:
    markdown: str
    warnings: Sequence[str]


def _classes(tag: Tag) -> str:
    value = tag.get("class")
    return " ".join(value) if isinstance(value, list) else str(value or "")


def code_language(pre: Tag) -> str:
    """The language a code block declares, or ""."""
    for tag in [pre, *pre.find_all("code", limit=1), *pre.find_parents("div", limit=2)]:
        if not isinstance(tag, Tag):
            continue
        lang = tag.get("data-lang")
        if isinstance(lang, str) and re.match(r"^[\w+#.-]+$", lang):
            return lang.lower()
        found = _LANG.search(_classes(tag)) or _BRUSH.search(_classes(tag))
        if found:
            return found.group(1).lower()
    return ""


class _Converter(MarkdownConverter):
    """markdownify's converter with the changes listed in the module docstring (its stubs
    lack the ``convert_*`` hooks, hence ``_base``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(heading_style="ATX", bullets="-", **options)
        self._base: Any = super()
        self.codes: list[str] = []
        self.warnings: list[str] = []

    def escape(self, text: str, parent_tags: Any) -> str:
        text = self._base.escape(text, parent_tags)
        return _LINE_START.sub(_escape_line_start, text)

    def convert_pre(self, el: Tag, text: str, parent_tags: Any) -> str:
        code = el.get_text()
        code = code.removeprefix("\n").rstrip("\n")
        if not code.strip():
            return ""
        longest = max((len(r) for r in re.findall(r"`+", code)), default=0)
        fence = "`" * max(3, longest + 1)
        self.codes.append(f"{fence}{code_language(el)}\n{code}\n{fence}")
        return f"\n\n\x01{len(self.codes) - 1}\x01\n\n"

    def convert_hN(self, n: int, el: Tag, text: str, parent_tags: Any) -> str:
        out: str = self._base.convert_hN(n, el, text, parent_tags)
        ident = el.get("id")
        if "_inline" in parent_tags or not isinstance(ident, str) or not _ID.match(ident):
            return out
        return out.rstrip("\n") + f" {{#{ident}}}\n\n"

    def convert_li(self, el: Tag, text: str, parent_tags: Any) -> str:
        text = (text or "").strip()
        if not text:
            return "\n"
        parent = el.parent
        if parent is not None and parent.name == "ol":
            start = str(parent.get("start") or "1")
            first = int(start) if start.isdigit() else 1
            bullet = f"{first + len(el.find_previous_siblings('li'))}."
        else:
            bullet = "-"
        indent = " " * max(4, len(bullet) + 1)
        lines = text.split("\n")
        rest = [indent + line if line else "" for line in lines[1:]]
        return "\n".join([f"{bullet} {lines[0]}", *rest]) + "\n"

    def convert_sub(self, el: Tag, text: str, parent_tags: Any) -> str:
        return f"<sub>{text}</sub>" if text.strip() else text

    def convert_sup(self, el: Tag, text: str, parent_tags: Any) -> str:
        return f"<sup>{text}</sup>" if text.strip() else text

    def convert_tr(self, el: Tag, text: str, parent_tags: Any) -> str:
        out: str = self._base.convert_tr(el, text.replace("\n", " "), parent_tags)
        cells = [c for c in el.find_all(["td", "th"], recursive=False) if isinstance(c, Tag)]
        plain = "| " + " | ".join(["---"] * len(cells)) + " |"
        if plain not in out or len(cells) == 0:
            return out
        marks = []
        for cell in cells:
            align = cell.get("align") or ""
            style = _ALIGN.search(str(cell.get("style") or ""))
            align = style.group(1) if style else str(align).lower()
            marks.append({"left": ":---", "right": "---:", "center": ":---:"}.get(align, "---"))
        return out.replace(plain, "| " + " | ".join(marks) + " |")

    def convert_td(self, el: Tag, text: str, parent_tags: Any) -> str:
        out: str = self._base.convert_td(el, text.replace("|", "\\|"), parent_tags)
        return out

    convert_th = convert_td

    def convert_figure(self, el: Tag, text: str, parent_tags: Any) -> str:
        caption = el.find("figcaption")
        image = el.find("img")
        if not isinstance(caption, Tag) or not isinstance(image, Tag) or "_inline" in parent_tags:
            return f"\n\n{text.strip()}\n\n"
        attrs = "".join(
            f' {name}="{html.escape(str(image.get(name)))}"'
            for name in ("src", "alt", "width", "height")
            if image.get(name) is not None
        )
        inner = caption.decode_contents().strip()
        link = image.find_parent("a")
        picture = f"<img{attrs}>"
        if isinstance(link, Tag) and isinstance(link.get("href"), str):
            picture = f'<a href="{html.escape(str(link["href"]))}">{picture}</a>'
        return f"\n\n<figure>\n{picture}\n<figcaption>{inner}</figcaption>\n</figure>\n\n"

    def _embedded(self, el: Tag, attr: str, what: str) -> str:
        src = el.get(attr)
        if isinstance(src, str) and src.lower().startswith(("http://", "https://")):
            return "\n\n" + self.convert(embeds.link_card(src)) + "\n\n"
        self.warnings.append(f"{what} without a source removed")
        return ""

    def convert_iframe(self, el: Tag, text: str, parent_tags: Any) -> str:
        return self._embedded(el, "src", "an iframe")

    def convert_embed(self, el: Tag, text: str, parent_tags: Any) -> str:
        return self._embedded(el, "src", "an embed")

    def convert_object(self, el: Tag, text: str, parent_tags: Any) -> str:
        return self._embedded(el, "data", "an object")

    def convert_script(self, el: Tag, text: str, parent_tags: Any) -> str:
        if el.get("src") or el.get_text().strip():
            return self._embedded(el, "src", "an inline script")
        return ""

    def convert_form(self, el: Tag, text: str, parent_tags: Any) -> str:
        self.warnings.append("a form removed (a static page cannot submit it)")
        return ""


def _footnotes(soup: BeautifulSoup) -> list[tuple[int, Tag]]:
    """Find footnote lists; replace each reference with a ``[^n]`` marker; return the
    notes (number, list item) with their back-links removed."""
    notes: list[tuple[int, Tag]] = []
    anchors: dict[str, list[Tag]] = {}  # one pass over the links, not one per note
    for a in soup.find_all("a", href=re.compile("^#")):
        if isinstance(a, Tag):
            anchors.setdefault(str(a["href"])[1:], []).append(a)
    for ol in soup.find_all("ol"):
        if not isinstance(ol, Tag):
            continue
        box = ol.find_parent(["div", "section"])
        marker = _classes(ol) + " " + (_classes(box) if isinstance(box, Tag) else "")
        if "footnote" not in marker:
            continue
        for li in ol.find_all("li", recursive=False):
            ident = li.get("id") if isinstance(li, Tag) else None
            if not isinstance(ident, str):
                continue
            refs = [a for a in anchors.get(ident, []) if not any(p is ol for p in a.parents)]
            if not refs:
                continue
            number = len(notes) + 1
            for ref in refs:
                sup = ref.find_parent("sup")
                alone = isinstance(sup, Tag) and sup.get_text().strip() == ref.get_text().strip()
                target = sup if alone and isinstance(sup, Tag) else ref
                target.replace_with(NavigableString(f"\x02{number}\x02"))
            for back in li.find_all("a", href=re.compile("^#")):
                back.decompose()
            notes.append((number, li.extract()))
        if not ol.find_all("li"):
            (box if isinstance(box, Tag) and "footnote" in _classes(box) else ol).decompose()
    return notes


def _restore_codes(text: str, codes: list[str]) -> str:
    def put(match: re.Match[str]) -> str:
        line_start = text.rfind("\n", 0, match.start()) + 1
        prefix = text[line_start : match.start()]
        block = codes[int(match.group(1))].split("\n")
        pad = prefix if not prefix.strip(" >") else ""
        rest = [(pad + line) if line else pad.rstrip() for line in block[1:]]
        return "\n".join([block[0], *rest])

    return _CODE_MARK.sub(put, text)


def _as_text(fragment: str) -> str:
    """The text of a fragment as escaped Markdown paragraphs, for HTML too deep to convert."""
    breaks = re.sub(r"</?(?:p|div|br|li|pre|h[1-6]|tr)\b[^>]*>", "\n\n", fragment, flags=re.I)
    soup = BeautifulSoup(breaks, "html.parser")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", soup.get_text(""))]
    escaped = [re.sub(r"([\\`*_{}\[\]<>#+!|-])", r"\\\1", p) for p in paragraphs if p]
    escaped = [re.sub(r"^(\d+)\.", r"\1\\.", p) for p in escaped]
    return "\n\n".join(escaped)


def convert(fragment: str) -> Converted:
    """HTML fragment -> Markdown and warnings (one line each) about what was removed."""
    soup = BeautifulSoup(fragment, "html.parser")
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for bad in soup.find_all(["style", "noscript"]):
        bad.decompose()
    # Text like "a <b> c" must stay text: Markdown would pass "<b>" through as a tag.
    for node in soup.find_all(string=re.compile("[<>]")):
        if isinstance(node, NavigableString) and not node.find_parent(["code", "pre"]):
            node.replace_with(node.replace("<", "&lt;").replace(">", "&gt;"))
    notes = _footnotes(soup)
    converter = _Converter()
    try:
        text: str = converter.convert_soup(soup)
        for number, li in notes:
            body = converter.convert(li.decode_contents()).strip().rstrip("\xa0").strip()
            lines = body.split("\n")
            body = "\n".join([lines[0], *[("    " + ln) if ln else "" for ln in lines[1:]]])
            text += f"\n\n[^{number}]: {body}"
    except RecursionError:  # markdownify recurses once per level of nesting
        return Converted(_as_text(fragment), (TOO_DEEP,))
    text = re.sub(r"[ \t]+\n", lambda m: m.group(0) if m.group(0).startswith("  ") else "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    text = re.sub(r"\x02(\d+)\x02", r"[^\1]", text)
    warnings = tuple(dict.fromkeys(converter.warnings))
    return Converted(_restore_codes(text, converter.codes), warnings)


def to_markdown(fragment: str) -> str:
    """HTML -> Markdown, warnings dropped (for callers that only want the text)."""
    return convert(fragment).markdown
