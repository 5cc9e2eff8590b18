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

import os
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
    return _Checker(config).exists(rel)


class _Checker:
    """One check's look-ups, each done once: a folder of a thousand posts links the same
    images again and again, and each missing image's source file is read once."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.static = [str(folder) for folder in config.static_dirs]
        self.base = config.base_url + "/"
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(config.base_url))
        self._exists: dict[str, bool] = {}
        self._texts: dict[str, str] = {}

    def exists(self, rel: str) -> bool:
        found = self._exists.get(rel)
        if found is None:
            found = self._exists[rel] = self._lookup(rel)
        return found

    def _lookup(self, rel: str) -> bool:
        if not rel.startswith("static/"):
            return False
        inner = rel[len("static/") :]
        if not inner or ".." in inner.split("/"):
            return False
        return any(os.path.isfile(os.path.join(folder, inner)) for folder in self.static)

    def resolve(self, page_url: str, written: str) -> str:
        """``written`` as a URL, as ``urljoin(page_url, written)`` gives it (the
        common shapes, a site path and a full URL without dot segments, without
        urljoin's cost)."""
        if "/." not in written:
            if written.startswith("/") and not written.startswith("//"):
                return self.origin + written
            if written.startswith(("https://", "http://")):
                return written
        return urljoin(page_url, written)

    def text(self, source: str) -> str:
        text = self._texts.get(source)
        if text is None:
            try:
                text = (self.config.site_dir / source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            self._texts[source] = text
        return text


def check(
    config: SiteConfig, posts: Iterable[Post], pages: Iterable[Page], *, strict: bool
) -> list[str]:
    """Raise for a missing front matter image (or, ``strict``, any missing image); return
    one warning line per missing Markdown image otherwise."""
    checker = _Checker(config)
    warnings: list[str] = []
    for post in posts:
        for image in post.images:
            rel = _local_rel(config, image.url)
            if rel is not None and not checker.exists(rel):
                raise _error(checker, post.source, rel, "images")
        warnings += _markdown(checker, post.source, post.body, config.post_url(post.slug), strict)
    for page in pages:
        url = f"{config.base_url}/{page.slug}/"
        warnings += _markdown(checker, page.source, page.body, url, strict)
    return warnings


def _markdown(checker: _Checker, source: str, body: str, page_url: str, strict: bool) -> list[str]:
    warnings: list[str] = []
    if "![" not in body:
        return warnings
    for match in _MARKDOWN_IMAGE.finditer(body):
        written = match.group(1)
        rel = _local_rel(checker.config, checker.resolve(page_url, written))
        if rel is None or checker.exists(rel):
            continue
        error = _error(checker, source, written, None, f"]({written}", f"](<{written}")
        if strict:
            raise error
        warnings.append(str(error))
    return warnings


def _error(
    checker: _Checker, source: str, written: str, key: str | None, *needles: str
) -> ContentError:
    """``source:line: image 'written' not found``, at the first line holding one of
    ``needles`` (the image as written), else at ``key``'s line."""
    text = checker.text(source)
    found = [n for n in (_line_of(text, needle) for needle in needles or (written,)) if n]
    line = min(found) if found else (key_line(text, key) if key else 1)
    return ContentError(source, line, f"image {written!r} not found")


def _line_of(text: str, needle: str) -> int:
    """The first line of ``text`` that mentions ``needle`` (as written), 0 when none does."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0
