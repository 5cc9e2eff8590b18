"""Local images must exist: a missing one is named with its file and line.

* An image in front matter (``images:``) travels to the fediverse as an attachment: when
  its local file is missing the build stops with
  ``content/posts/x.md:7: image 'static/x.png' not found``.
* An image in the Markdown body (``![alt](path)``) gives the same line as a warning, or
  stops the build under ``build --strict``.

A local image is one whose URL, resolved against the page it is on, lies under base_url:
the build copies nothing into the output but the static folders (the theme's, then the
site's ``static/``), so it exists when one of them holds the file.

The local Markdown images of each post (as written, resolved, and the line naming them
once one was missing) are kept in ``.indiebridge/cache/image-refs.json`` by the post's
file digest and slug: a rebuild looks again only at the posts that changed, and checks
that each image still exists.  A resident process keeps each post's result while no
static folder changed (``_kept``), and then reads and writes no file at all.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from typing import Any
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
        self._dirs: dict[str, bool] = {}

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
        parent = os.path.dirname(inner)
        return any(
            self._is_dir(folder, parent) and os.path.isfile(os.path.join(folder, inner))
            for folder in self.static
        )

    def _is_dir(self, folder: str, parent: str) -> bool:
        """Whether ``folder/parent`` is a folder, looked up once: a thousand images under
        one missing folder (or a site without ``static/``) cost one look-up, not one each."""
        key = f"{folder}\0{parent}"
        found = self._dirs.get(key)
        if found is None:
            found = self._dirs[key] = os.path.isdir(os.path.join(folder, parent))
        return found

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


Ref = list[Any]  # [as written, path below base_url, line (0: not looked up yet)]
REFS_VERSION = "1"  # of the pattern and the entry shape; another version starts afresh


class _RefCache:
    """The local Markdown images of each post, by its file digest and slug."""

    def __init__(self, config: SiteConfig) -> None:
        self.path = config.cache_dir / "image-refs.json"
        self.header = [REFS_VERSION, config.base_url]
        self.old: dict[str, list[Ref]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("header") == self.header:
                posts = data.get("posts")
                self.old = posts if isinstance(posts, dict) else {}
        except (OSError, ValueError):
            pass
        self.new: dict[str, list[Ref]] = {}
        self.changed = False

    def get(self, key: str) -> list[Ref] | None:
        refs = self.old.get(key)
        if isinstance(refs, list) and all(_valid(r) for r in refs):
            self.new[key] = refs
            return refs
        return None

    def put(self, key: str, refs: list[Ref]) -> None:
        self.new[key] = refs
        self.changed = True

    def save(self) -> None:
        if not self.changed and self.new.keys() == self.old.keys():
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"header": self.header, "posts": self.new}), "utf-8")
            os.replace(tmp, self.path)
        except OSError:  # a cache that cannot be written only costs speed
            tmp.unlink(missing_ok=True)


def _valid(ref: object) -> bool:
    return (
        isinstance(ref, list)
        and len(ref) == 3
        and isinstance(ref[0], str)
        and isinstance(ref[1], str)
        and isinstance(ref[2], int)
    )


def check(
    config: SiteConfig, posts: Iterable[Post], pages: Iterable[Page], *, strict: bool
) -> list[str]:
    """Raise for a missing front matter image (or, ``strict``, any missing image); return
    one warning line per missing Markdown image otherwise."""
    checker = _Checker(config)
    where = (str(config.site_dir), config.base_url, *checker.static)
    signature = _static_signature(checker.static)
    kept = _kept.get(where)
    known = kept[1] if kept is not None and signature is not None and kept[0] == signature else {}
    # With every post known to this process, the file is neither read nor written: it
    # is for the next fresh process, which looks again at the posts it lacks.
    cache = _RefCache(config) if not known else None
    found: dict[str, list[ContentError]] = {}
    warnings: list[str] = []
    for post in posts:
        key = f"{post.slug}:{post.digest}"
        missing = known.get(key)
        if missing is None:
            missing = _post_missing(checker, cache, post, key, config)
        found[key] = missing
        if missing and strict:
            raise missing[0]
        warnings += map(str, missing)
    for page in pages:
        url = f"{config.base_url}/{page.slug}/"
        refs = _local_refs(checker, page.body, url)
        warnings += _missing(checker, None, page.source, refs, strict)
    if cache is not None:
        cache.save()
    if signature is not None:
        _kept[where] = (signature, found)
    return warnings


# A resident process (``serve --watch``, the daemon) keeps each post's missing images, by
# its slug and digest, while no folder of the static folders changed: adding or removing
# a file changes its folder's mtime.  Not kept when a folder changed within RACY_NS (a
# change in the same clock tick would keep the mtime).
_kept: dict[tuple[str, ...], tuple[tuple[tuple[str, int], ...], dict[str, list[ContentError]]]] = {}
RACY_NS = 2_000_000_000


def _static_signature(folders: list[str]) -> tuple[tuple[str, int], ...] | None:
    signature: list[tuple[str, int]] = []
    now = time.time_ns()
    for folder in folders:
        if not os.path.isdir(folder):
            signature.append((folder, -1))
            continue
        for root, _dirs, _files in os.walk(folder):
            try:
                mtime = os.stat(root).st_mtime_ns
            except OSError:
                return None
            if now - mtime < RACY_NS:
                return None
            signature.append((root, mtime))
    return tuple(signature)


def forget_kept() -> None:
    """Drop what this process keeps of image checks (as a fresh process starts)."""
    _kept.clear()


def _post_missing(
    checker: _Checker, cache: _RefCache | None, post: Post, key: str, config: SiteConfig
) -> list[ContentError]:
    """The post's missing Markdown images as errors; raises for a front matter one."""
    for image in post.images:
        rel = _local_rel(config, image.url)
        if rel is not None and not checker.exists(rel):
            raise _error(checker, post.source, rel, "images")
    refs = cache.get(key) if cache is not None else None
    if refs is None:
        refs = _local_refs(checker, post.body, config.post_url(post.slug))
        if cache is not None:
            cache.put(key, refs)
    return _missing_errors(checker, cache, post.source, refs)


def _local_refs(checker: _Checker, body: str, page_url: str) -> list[Ref]:
    """The Markdown images of ``body`` that resolve under base_url, in order."""
    refs: list[Ref] = []
    if "![" not in body:
        return refs
    for match in _MARKDOWN_IMAGE.finditer(body):
        written = match.group(1)
        rel = _local_rel(checker.config, checker.resolve(page_url, written))
        if rel is not None:
            refs.append([written, rel, 0])
    return refs


def _missing(
    checker: _Checker, cache: _RefCache | None, source: str, refs: list[Ref], strict: bool
) -> list[str]:
    errors = _missing_errors(checker, cache, source, refs)
    if errors and strict:
        raise errors[0]
    return [str(error) for error in errors]


def _missing_errors(
    checker: _Checker, cache: _RefCache | None, source: str, refs: list[Ref]
) -> list[ContentError]:
    errors: list[ContentError] = []
    for ref in refs:
        written, rel, line = ref
        if checker.exists(rel):
            continue
        if not line:
            line = ref[2] = _error(checker, source, written, None, *_needles(written)).line
            if cache is not None:  # remembered with the post
                cache.changed = True
        errors.append(ContentError(source, line, f"image {written!r} not found"))
    return errors


def _needles(written: str) -> tuple[str, str]:
    return f"]({written}", f"](<{written}"


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
