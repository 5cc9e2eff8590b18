"""Local images must exist: a missing one is named with its file and line.

* An image in front matter (``images:``) travels to the fediverse as an attachment: when
  its local file is missing the build stops with
  ``content/posts/x.md:7: image 'static/x.png' not found``.
* An image in the Markdown body (``![alt](path)``) gives the same line as a warning, or
  stops the build under ``build --strict``.

A local image is one whose URL, resolved against the page it is on, lies under base_url:
the build copies nothing into the output but the static folders (the theme's, then the
site's ``static/``), so it exists when one of them holds the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urljoin, urlsplit

from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site.frontmatter import key_line
from bridge.site.posts import Page, Post

# Inline Markdown images: ![alt](url) and ![alt](<url> "title").
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]\n]*\]\(\s*<?([^)\s>]+)")


def _local_rel(config: SiteConfig, url: str) -> str | None:
    """The path below base_url of one of our URLs (without query or fragment), else None."""
    base = config.base_url + "/"
    if not url.startswith(base):
        return None
    return unquote(urlsplit(url).path[len(urlsplit(base).path) :])


def exists(config: SiteConfig, rel: str) -> bool:
    """Whether the output will hold ``rel``: a file of one of the static folders."""
    if not rel.startswith("static/"):
        return False
    inner = rel[len("static/") :]
    if not inner or ".." in inner.split("/"):
        return False
    return any((folder / inner).is_file() for folder in config.static_dirs)


def check(
    config: SiteConfig, posts: Iterable[Post], pages: Iterable[Page], *, strict: bool
) -> list[str]:
    """Raise for a missing front matter image (or, ``strict``, any missing image); return
    one warning line per missing Markdown image otherwise."""
    warnings: list[str] = []
    for post in posts:
        for image in post.images:
            rel = _local_rel(config, image.url)
            if rel is not None and not exists(config, rel):
                raise _error(config, post.source, rel, "images")
        warnings += _markdown(config, post.source, post.body, config.post_url(post.slug), strict)
    for page in pages:
        url = f"{config.base_url}/{page.slug}/"
        warnings += _markdown(config, page.source, page.body, url, strict)
    return warnings


def _markdown(config: SiteConfig, source: str, body: str, page_url: str, strict: bool) -> list[str]:
    warnings = []
    for match in _MARKDOWN_IMAGE.finditer(body):
        written = match.group(1)
        rel = _local_rel(config, urljoin(page_url, written))
        if rel is None or exists(config, rel):
            continue
        error = _error(config, source, written, None, f"]({written}", f"](<{written}")
        if strict:
            raise error
        warnings.append(str(error))
    return warnings


def _error(
    config: SiteConfig, source: str, written: str, key: str | None, *needles: str
) -> ContentError:
    """``source:line: image 'written' not found``, at the first line holding one of
    ``needles`` (the image as written), else at ``key``'s line."""
    try:
        text = (config.site_dir / source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    found = [n for n in (_line_of(text, needle) for needle in needles or (written,)) if n]
    line = min(found) if found else (key_line(text, key) if key else 1)
    return ContentError(source, line, f"image {written!r} not found")


def _line_of(text: str, needle: str) -> int:
    """The first line of ``text`` that mentions ``needle`` (as written), 0 when none does."""
    for number, line in enumerate(text.split("\n"), start=1):
        if needle in line:
            return number
    return 0
