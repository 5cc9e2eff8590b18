"""Hugo shortcodes and Jekyll Liquid tags in Markdown sources -> plain Markdown.

Facts relied on: Hugo's built-in shortcodes (gohugo.io/content-management/shortcodes/):
``{{< highlight LANG >}}code{{< /highlight >}}``, ``{{< figure src= alt= caption= >}}``,
``{{< youtube ID >}}``, ``{{< vimeo ID >}}``, ``{{< gist USER ID >}}``,
``{{< ref "path" >}}``/``relref`` (``{{% %}}`` is the same with Markdown inside).  Jekyll's
tags (jekyllrb.com/docs/liquid/tags/): ``{% highlight LANG [linenos] %}…{% endhighlight %}``,
``{% raw %}…{% endraw %}``, ``{% post_url 2010-07-21-name %}``, ``{% link path %}``, and
``{{ site.baseurl }}``.  Anything else is left as written, with a warning: a template
tag cannot run in a static post.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.site.importing import embeds
from bridge.site.importing.wordpress_content import attributes

Resolve = Callable[[str], str | None]
"""A referenced file (Hugo ``ref``, Jekyll ``post_url``/``link``) -> its old URL."""

_HUGO_PAIRED = re.compile(
    r"\{\{([<%])\s*highlight\s+([^\s>%]+)[^}]*?[>%]\}\}\n?(.*?)\n?\{\{[<%]\s*/highlight\s*[>%]\}\}",
    re.S,
)
_HUGO_ESCAPED = re.compile(r"\{\{([<%])/\*(.*?)\*/([>%])\}\}", re.S)  # {{</* x */>}}
_HUGO = re.compile(r"\{\{([<%])\s*(/?)([\w-]+)(.*?)\s*[>%]\}\}", re.S)
_LIQUID_BLOCK = re.compile(
    r"\{%-?\s*highlight\s+([\w+#.-]+)[^%]*-?%\}\n?(.*?)\n?\{%-?\s*endhighlight\s*-?%\}", re.S
)
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.S)
_LIQUID = re.compile(r"\{%-?\s*([\w-]+)\s*(.*?)\s*-?%\}|\{\{-?\s*(.*?)\s*-?\}\}", re.S)


@dataclass
class _Work:
    resolve: Resolve
    baseurl: str = ""
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def keep(self, text: str) -> str:
        self.kept.append(text)
        return f"\x03{len(self.kept) - 1}\x03"

    def restore(self, text: str) -> str:
        return re.sub(r"\x03(\d+)\x03", lambda m: self.kept[int(m.group(1))], text)

    def fence(self, language: str, code: str) -> str:
        longest = max((len(r) for r in re.findall(r"`+", code)), default=0)
        ticks = "`" * max(3, longest + 1)
        return self.keep(f"{ticks}{language.lower()}\n{code}\n{ticks}")


def _hugo_tag(match: re.Match[str], work: _Work) -> str:
    _, closing, name, raw = match.groups()
    attrs = attributes(raw.strip())
    first = attrs.get("0", "").strip("\"'")
    if closing:
        return match.group(0)
    if name == "figure":
        src, alt = html.escape(attrs.get("src", "")), html.escape(attrs.get("alt", ""))
        img = f'<img src="{src}" alt="{alt}">'
        caption = attrs.get("caption") or attrs.get("title")
        if not caption:
            return work.keep(img)
        return work.keep(f"<figure>\n{img}\n<figcaption>{caption}</figcaption>\n</figure>")
    if name in ("youtube", "vimeo"):
        ident = attrs.get("id", first)
        url = (
            f"https://www.youtube.com/watch?v={ident}"
            if name == "youtube"
            else embeds.vimeo_url(ident)
        )
        return work.keep(f"[{embeds.label(url)}]({url})")
    if name == "gist":
        user, gist = attrs.get("0", ""), attrs.get("1", "")
        url = f"https://gist.github.com/{user}/{gist}"
        return work.keep(f"[{embeds.label(url)}]({url})")
    if name in ("ref", "relref"):
        target = work.resolve(first)
        if target:
            return work.keep(target)
        work.warnings.append(f"{name} to {first!r} not found; left as it is")
        return match.group(0)
    work.warnings.append(f"unknown Hugo shortcode {{{{< {name} >}}}} left as it is")
    return match.group(0)


def _liquid_tag(match: re.Match[str], work: _Work) -> str:
    name, raw, expression = match.groups()
    if expression is not None:
        if expression.strip() in ("site.baseurl", "site.baseurl | relative_url"):
            return work.baseurl
        work.warnings.append(f"Liquid output {{{{ {expression.strip()} }}}} left as it is")
        return match.group(0)
    if name in ("post_url", "link"):
        target = work.resolve(raw.strip())
        if target:
            return target
        work.warnings.append(f"{name} to {raw.strip()!r} not found; left as it is")
        return match.group(0)
    work.warnings.append(f"Liquid tag {{% {name} %}} left as it is")
    return match.group(0)


def hugo(markdown: str, resolve: Resolve) -> tuple[str, tuple[str, ...]]:
    """Hugo shortcodes -> Markdown; (text, warnings)."""
    work = _Work(resolve)
    text = _HUGO_ESCAPED.sub(lambda m: work.keep("{{" + "".join(m.groups()) + "}}"), markdown)
    text = _HUGO_PAIRED.sub(lambda m: work.fence(m.group(2), m.group(3)), text)
    text = _HUGO.sub(lambda m: _hugo_tag(m, work), text)
    return work.restore(text), tuple(dict.fromkeys(work.warnings))


def jekyll(markdown: str, resolve: Resolve, baseurl: str) -> tuple[str, tuple[str, ...]]:
    """Jekyll Liquid tags -> Markdown; (text, warnings)."""
    work = _Work(resolve, baseurl)
    text = _RAW.sub(lambda m: work.keep(m.group(1)), markdown)
    text = _LIQUID_BLOCK.sub(lambda m: work.fence(m.group(1), m.group(2)), text)
    text = _LIQUID.sub(lambda m: _liquid_tag(m, work), text)
    return work.restore(text), tuple(dict.fromkeys(work.warnings))
