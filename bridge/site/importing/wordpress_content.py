"""WordPress post text -> plain HTML: blocks, classic-editor paragraphs and shortcodes.

Facts relied on (WordPress 6.x source, wp-includes/):

* Block-editor content is HTML between ``<!-- wp:name {json} -->`` and
  ``<!-- /wp:name -->`` comments (``blocks.php``, ``parse_blocks``); when a post has
  blocks, WordPress does not run ``wpautop`` on it (``do_blocks`` removes the filter).
* Classic-editor content stores paragraphs as blank lines and line breaks as single
  newlines; ``wpautop`` (``formatting.php``) adds ``<p>``/``<br>`` on display and leaves
  ``<pre>`` alone.
* Shortcodes (``shortcodes.php``) are ``[name attr="v"]`` or ``[name]content[/name]``;
  ``[caption]`` (``media.php``, ``img_caption_shortcode``) wraps an image and its caption
  text, ``[gallery ids="1,2"]`` lists attachment ids (default: the post's attached
  images), ``[embed]URL[/embed]`` is an oEmbed URL; Jetpack adds ``[youtube URL]`` and
  ``[vimeo ID]``; SyntaxHighlighter adds ``[code lang="x"]`` / ``[sourcecode]``.
"""

from __future__ import annotations

import bisect
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.site.importing import embeds

_EMBED_BLOCK = re.compile(
    r"<!-- wp:(?:core-)?embed[\w/-]*(?:\s+(\{.*?\}))?\s*-->(.*?)"
    r"<!-- /wp:(?:core-)?embed[\w/-]* -->",
    re.S,
)
_BLOCK_COMMENT = re.compile(r"<!-- /?wp:[^>]*?-->\n?")
_BLOCK_TOKEN = re.compile(r"<!-- (/?)wp:[\w/-]+(?:\s+\{.*?\})?\s*(/?)-->", re.S)
_MORE = re.compile(r"<!--(?:more|nextpage|noteaser)\b[^>]*-->")
_PRE = re.compile(r"<pre\b.*?</pre>", re.S | re.I)
_ATTRS = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s'"\]]+))|(\S+)""")
_SHORTCODE = re.compile(r"\[(\[?)([\w-]+)((?:\s|=)[^\]]*?)?(/)?\](?!\()")
_CODE_SHORTCODE = re.compile(
    r"\[(code|sourcecode)((?:\s|=)[^\]]*)?\]\n?(.*?)\n?\[/\1\]", re.S | re.I
)
_BLOCK_START = re.compile(
    r"^\s*(?:<(?:p|div|h[1-6]|ul|ol|li|blockquote|pre|table|figure|hr|dl|section|!--)\b|\x00)",
    re.I,
)
_HTTP = re.compile(r"^https?://\S+$")


@dataclass(frozen=True)
class Attachment:
    url: str
    alt: str = ""
    parent: str = ""  # the post it was uploaded to


@dataclass
class _Work:
    attachments: Mapping[str, Attachment]
    post_id: str
    saved: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def keep(self, fragment: str) -> str:
        """Set a finished block aside so later steps cannot touch it."""
        self.saved.append(fragment)
        return f"\n\n\x00{len(self.saved) - 1}\x00\n\n"

    def restore(self, text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: self.saved[int(m.group(1))], text)


def attributes(text: str) -> dict[str, str]:
    """``attr="v" other=w bare`` -> {"attr": "v", "other": "w", "0": "bare"}."""
    out: dict[str, str] = {}
    positional = 0
    for match in _ATTRS.finditer(html.unescape(text or "").lstrip("=")):
        if match.group(1):
            value = next(g for g in match.group(2, 3, 4) if g is not None)
            out[match.group(1).lower()] = value
        else:
            out[str(positional)] = match.group(5)
            positional += 1
    return out


def _embed_block(match: re.Match[str]) -> str:
    try:
        data = json.loads(match.group(1) or "{}")
    except ValueError:
        data = {}
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        found = re.search(r"https?://[^\s<\"]+", match.group(2))
        url = found.group(0) if found else ""
    return embeds.link_card(url) if url else ""


def _code(match: re.Match[str], work: _Work) -> str:
    attrs = attributes(match.group(2) or "")
    language = attrs.get("language") or attrs.get("lang") or attrs.get("0", "")
    language = re.sub(r"[^\w+#.-]", "", language).lower()
    code = html.escape(html.unescape(match.group(3)), quote=False)
    css = f' class="language-{language}"' if language else ""
    return work.keep(f"<pre><code{css}>{code}</code></pre>")


def _caption(attrs: Mapping[str, str], content: str) -> str:
    image = re.search(r"(?:<a\b[^>]*>\s*)?<img\b[^>]*>(?:\s*</a>)?", content, re.S)
    picture = image.group(0) if image else ""
    text = attrs.get("caption") or (content.replace(picture, "", 1) if image else content)
    return f"<figure>{picture}<figcaption>{text.strip()}</figcaption></figure>"


def _gallery(attrs: Mapping[str, str], work: _Work) -> str:
    ids = [i.strip() for i in attrs.get("ids", attrs.get("include", "")).split(",") if i.strip()]
    if not ids:
        ids = [key for key, item in work.attachments.items() if item.parent == work.post_id]
    images = []
    for key in ids:
        item = work.attachments.get(key)
        if item is None:
            work.warnings.append(f"gallery image {key} is not in the export")
            continue
        images.append(f'<p><img src="{html.escape(item.url)}" alt="{html.escape(item.alt)}"></p>')
    return "\n".join(images)


_ENCLOSING = ("caption", "wp_caption", "embed", "youtube", "vimeo")


def _closing(
    text: str, name: str, after: int, found: dict[str, list[tuple[int, int]]]
) -> tuple[int, int] | None:
    """(start, end) of the first ``[/name]`` at or after ``after``, or None; each name's
    closings are found once, so a text full of shortcodes stays linear."""
    if name not in found:
        pattern = re.compile(rf"\[/{re.escape(name)}\]", re.I)
        found[name] = [m.span() for m in pattern.finditer(text)]
    spans = found[name]
    index = bisect.bisect_left(spans, (after, -1))
    return spans[index] if index < len(spans) else None


def _shortcodes(text: str, work: _Work) -> str:
    out: list[str] = []
    pos = 0
    closings: dict[str, list[tuple[int, int]]] = {}
    for match in _SHORTCODE.finditer(text):
        if match.start() < pos:
            continue
        escaped, name, raw, _ = match.groups()
        name_l = name.lower()
        if escaped:  # [[name]] is how WordPress writes a literal shortcode
            close = text.find("]]", match.end() - 1, match.end() + 1024)
            end = close + 2 if close >= 0 else match.end()
            out.append(text[pos : match.start()] + text[match.start() + 1 : end - 1])
            pos = end
            continue
        content, end = "", match.end()
        closing = _closing(text, name_l, match.end(), closings) if name_l in _ENCLOSING else None
        if closing:
            content, end = text[match.end() : closing[0]], closing[1]
        attrs = attributes(raw or "")
        if name_l in ("caption", "wp_caption"):
            replacement = _caption(attrs, content)
        elif name_l == "gallery":
            replacement = _gallery(attrs, work)
        elif name_l in ("embed", "youtube"):
            url = content.strip() or attrs.get("0", "") or (raw or "").lstrip("= ").strip()
            replacement = embeds.link_card(url) if _HTTP.match(url) else ""
        elif name_l == "vimeo":
            replacement = embeds.link_card(embeds.vimeo_url(content or attrs.get("0", "")))
        else:
            if not name_l.isdigit():
                work.warnings.append(f"unknown shortcode [{name}] left as it is")
            continue
        out.append(text[pos : match.start()] + replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def autop(text: str) -> str:
    """Classic-editor text -> HTML paragraphs, as ``wpautop``: blank lines separate
    paragraphs, single newlines are line breaks; blocks and set-aside parts stay as they
    are."""
    chunks = [c for c in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if c.strip()]
    out = []
    for chunk in chunks:
        if _BLOCK_START.match(chunk):
            out.append(chunk.strip("\n"))
        else:
            out.append("<p>" + chunk.strip().replace("\n", "<br>\n") + "</p>")
    return "\n".join(out)


def _freeform(text: str) -> list[tuple[bool, str]]:
    """Split block content into (is_block, text) runs: text outside every block is
    classic (freeform) content, which still needs paragraphs."""
    runs: list[tuple[bool, str]] = []
    depth, start = 0, 0
    for match in _BLOCK_TOKEN.finditer(text):
        closing, self_closing = match.group(1), match.group(2)
        if depth == 0 and not closing:
            runs.append((False, text[start : match.start()]))
            start = match.start()
        if self_closing:
            pass
        elif closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
        if depth == 0:
            runs.append((True, text[start : match.end()]))
            start = match.end()
    runs.append((depth > 0, text[start:]))
    return [(block, run) for block, run in runs if run.strip()]


def to_html(
    text: str,
    *,
    attachments: Mapping[str, Attachment] | None = None,
    post_id: str = "",
) -> tuple[str, Sequence[str]]:
    """WordPress ``post_content`` -> (HTML, warnings about what could not be converted)."""
    work = _Work(attachments or {}, post_id)
    text = _EMBED_BLOCK.sub(lambda m: work.keep(_embed_block(m)), text.replace("\r\n", "\n"))
    out = []
    for block, run in _freeform(text):
        run = _MORE.sub("", _BLOCK_COMMENT.sub("", run))
        run = _CODE_SHORTCODE.sub(lambda m: _code(m, work), run)
        run = _PRE.sub(lambda m: work.keep(m.group(0)), run)
        run = _shortcodes(run, work)
        out.append(run if block else autop(run))
    return work.restore("\n".join(out)).strip(), tuple(dict.fromkeys(work.warnings))
