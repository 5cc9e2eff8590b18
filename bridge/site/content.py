"""Read ``content/``: YAML front matter + Markdown into ``Post`` and ``Page`` values.

Each file is parsed once.  Rendered Markdown is cached by the hash of the file's body under
``.indiebridge/cache/md/`` so an unchanged post is never rendered twice.  Every problem is a
``ContentError`` whose message starts with ``content/posts/x.md:LINE:``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import pickle
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import markdown
import yaml

from bridge import __version__
from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site import posts as posts_module
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import SLUG_RE, Image, Page, Post, slugify

POST_KEYS = {
    "title",
    "date",
    "updated",
    "slug",
    "tags",
    "summary",
    "draft",
    "lang",
    "content_warning",
    "images",
    "in_reply_to",
    "fediverse_format",
    "original_url",
}
PAGE_KEYS = {"title", "slug", "lang", "date", "updated"}
MD_EXTENSIONS = ["extra", "sane_lists", "smarty"]
# Bump when the Markdown settings change, so cached HTML is re-rendered.
RENDER_VERSION = "md1:" + ",".join(MD_EXTENSIONS) + ":" + markdown.__version__

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")

try:  # the C loader is ~10x faster; fall back to pure Python where libyaml is missing
    _Base: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading that refuses a key given twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node),
)


PARALLEL_MIN = 64
"""Fewer uncached bodies than this are rendered in-process (a worker pool costs ~0.2 s)."""

_worker_md: markdown.Markdown | None = None


def _render_in_worker(text: str) -> str:
    global _worker_md
    if _worker_md is None:
        _worker_md = markdown.Markdown(extensions=MD_EXTENSIONS, output_format="html")
    return _worker_md.reset().convert(text)


class MarkdownRenderer:
    """Markdown -> HTML with a content-hash cache on disk (one SQLite file).

    With ``defer()``, a body missing from the cache is not rendered at once: ``render``
    returns a placeholder and ``finish()`` renders them all, in one worker process per
    core when there are many (a first build), and maps each placeholder to its HTML.

    The cache was one file per body; creating and opening thousands of small files cost
    more than a second per thousand posts on ordinary disks, a single file a few ms.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self._md = markdown.Markdown(extensions=MD_EXTENSIONS, output_format="html")
        self.cache_path = cache_dir / "markdown.sqlite3" if cache_dir else None
        self.rendered = 0
        self.cached = 0
        self._con: sqlite3.Connection | None = None
        self._deferring = False
        self._pending: dict[str, str] = {}  # placeholder -> Markdown

    def _db(self) -> sqlite3.Connection | None:
        if self._con is None and self.cache_path is not None:
            try:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(self.cache_path, timeout=30, isolation_level=None)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("CREATE TABLE IF NOT EXISTS html (key TEXT PRIMARY KEY, html TEXT)")
            except (OSError, sqlite3.Error):
                self.cache_path = None  # a cache that cannot be opened only costs speed
                return None
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def defer(self) -> None:
        self._deferring = True

    def cancel(self) -> None:
        self._deferring = False
        self._pending = {}

    def finish(self) -> dict[str, str]:
        """Render what ``render`` deferred: placeholder -> HTML (and stop deferring)."""
        self._deferring = False
        pending, self._pending = self._pending, {}
        texts = list(pending.values())
        workers = min(os.cpu_count() or 1, 8)
        htmls: list[str] | None = None
        if len(texts) >= PARALLEL_MIN and workers > 1:
            htmls = _render_parallel(texts, workers)
        if htmls is None:
            htmls = [self._md.reset().convert(text) for text in texts]
        self._store(list(zip(texts, htmls, strict=True)))
        return dict(zip(pending, htmls, strict=True))

    def _key(self, text: str) -> str:
        return hashlib.sha256((RENDER_VERSION + "\0" + text).encode()).hexdigest()

    def render(self, text: str) -> str:
        key = self._key(text)
        con = self._db()
        if con is not None:
            try:
                row = con.execute("SELECT html FROM html WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None:
                self.cached += 1
                return str(row[0])
        if self._deferring:
            placeholder = f"\0markdown:{key}"
            self._pending[placeholder] = text
            return placeholder
        html = self._md.reset().convert(text)
        self._store([(text, html)])
        return html

    def _store(self, rendered: list[tuple[str, str]]) -> None:
        self.rendered += len(rendered)
        con = self._db()
        if con is None or not rendered:
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(
                    "INSERT OR REPLACE INTO html(key, html) VALUES (?, ?)",
                    [(self._key(text), html) for text, html in rendered],
                )
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs speed


def split_front_matter(text: str, rel: str) -> tuple[dict[str, Any], str, int]:
    """Return (front matter, body, line number where the body starts)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---"):
        raise ContentError(rel, 1, "missing YAML front matter (the file must start with '---')")
    lines = text.split("\n")
    if lines[0].strip() != "---":
        raise ContentError(rel, 1, "the first line must be exactly '---'")
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise ContentError(rel, 1, "front matter is not closed by a '---' line")
    raw = "\n".join(lines[1:end])
    try:
        data = yaml.load(raw, Loader=_Loader) if raw.strip() else {}  # noqa: S506 - SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ContentError(rel, line, f"invalid YAML front matter: {problem}") from None
    if not isinstance(data, dict):
        raise ContentError(rel, 2, "front matter must be a mapping of 'key: value' lines")
    return data, "\n".join(lines[end + 1 :]), end + 2


def _key_line(text: str, key: str) -> int:
    for i, line in enumerate(text.split("\n")[1:], start=2):
        if line.startswith(f"{key}:") or line.startswith(f'"{key}":'):
            return i
        if line.strip() in ("---", "..."):
            break
    return 1


def _datetime(value: Any, rel: str, line: int, key: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ContentError(
        rel, line, f"'{key}' must be a date like 2026-03-01 or 2026-03-01T09:30:00+01:00"
    )


def _str(value: Any, rel: str, line: int, key: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ContentError(rel, line, f"'{key}' must be text")


def _read(path: Path, rel: str) -> tuple[str, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContentError(rel, 1, f"cannot be read: {exc.strerror}") from None
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(rel, line, "not valid UTF-8 text") from None


def parse_post(path: Path, rel: str, config: SiteConfig, renderer: MarkdownRenderer) -> Post:
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel)

    def line(key: str) -> int:
        return _key_line(text, key)

    for key in meta:
        if key not in POST_KEYS:
            raise ContentError(
                rel,
                line(str(key)),
                f"unknown front matter key '{key}' "
                f"(expected one of: {', '.join(sorted(POST_KEYS))})",
            )
    if "date" not in meta:
        raise ContentError(rel, 1, "front matter key 'date' is required (e.g. date: 2026-03-01)")
    date = _datetime(meta["date"], rel, line("date"), "date")
    updated = (
        _datetime(meta["updated"], rel, line("updated"), "updated")
        if meta.get("updated") is not None
        else None
    )
    title = meta.get("title")
    if title is not None:
        title = _str(title, rel, line("title"), "title").strip() or None
    stem = _DATE_PREFIX.sub("", path.stem)
    slug = _str(meta.get("slug", slugify(stem)), rel, line("slug"), "slug")
    if not SLUG_RE.match(slug):
        raise ContentError(
            rel, line("slug"), f"'slug' must be lowercase letters, digits and dashes, got {slug!r}"
        )
    tags_raw = meta.get("tags") or []
    if isinstance(tags_raw, str):
        tags_raw = [t.strip() for t in tags_raw.split(",") if t.strip()]
    if not isinstance(tags_raw, list):
        raise ContentError(rel, line("tags"), "'tags' must be a list like [python, fediverse]")
    tags = tuple(_str(t, rel, line("tags"), "tags").strip().lstrip("#") for t in tags_raw)
    for tag in tags:  # each tag federates as a hashtag (bridge.site.hashtags)
        if hashtag_name(tag) is None:
            raise ContentError(
                rel,
                line("tags"),
                f"tag {tag!r} cannot be a fediverse hashtag: it needs a letter "
                "(hashtags hold letters, digits, '_' and '·')",
            )
    images_raw = meta.get("images") or []
    if not isinstance(images_raw, list):
        raise ContentError(rel, line("images"), "'images' must be a list of {url, alt} entries")
    images = []
    for item in images_raw:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ContentError(rel, line("images"), "each image needs 'url' (and 'alt' text)")
        alt = item.get("alt")
        if not isinstance(alt, str) or not alt.strip():
            raise ContentError(
                rel, line("images"), f"image {item['url']!r} needs 'alt' text describing it"
            )
        url = item["url"]
        if not url.startswith(("http://", "https://")):
            url = config.base_url + "/" + url.lstrip("/")
        images.append(Image(url=url, alt=alt.strip(), media_type=_media_type(url)))
    fmt = meta.get("fediverse_format", config.fediverse_format)
    if fmt not in ("article", "note"):
        raise ContentError(
            rel, line("fediverse_format"), "'fediverse_format' must be article or note"
        )
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise ContentError(rel, line("draft"), "'draft' must be true or false")
    in_reply_to = meta.get("in_reply_to")
    if in_reply_to is not None:
        in_reply_to = _str(in_reply_to, rel, line("in_reply_to"), "in_reply_to")
        if not in_reply_to.startswith(("http://", "https://")):
            raise ContentError(rel, line("in_reply_to"), "'in_reply_to' must be an http(s) URL")
    summary = meta.get("summary")
    cw = meta.get("content_warning")
    extra = {}
    if meta.get("original_url"):
        extra["original_url"] = _str(
            meta["original_url"], rel, line("original_url"), "original_url"
        )
    return Post(
        source=rel,
        slug=slug,
        title=title,
        date=date,
        updated=updated,
        tags=tags,
        summary=_str(summary, rel, line("summary"), "summary").strip() if summary else None,
        draft=draft,
        lang=_str(meta.get("lang", config.language), rel, line("lang"), "lang"),
        content_warning=_str(cw, rel, line("content_warning"), "content_warning") if cw else None,
        images=tuple(images),
        in_reply_to=in_reply_to,
        fediverse_format=fmt,
        body=body,
        html=renderer.render(body),
        digest=hashlib.sha256(raw).hexdigest(),
        extra=extra,
    )


def _media_type(url: str) -> str:
    ext = url.rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "avif": "image/avif",
        "svg": "image/svg+xml",
    }.get(ext, "image/jpeg")


def parse_page(path: Path, rel: str, config: SiteConfig, renderer: MarkdownRenderer) -> Page:
    text, raw = _read(path, rel)
    meta, body, _ = split_front_matter(text, rel)
    for key in meta:
        if key not in PAGE_KEYS:
            raise ContentError(
                rel,
                _key_line(text, str(key)),
                f"unknown front matter key '{key}' for a page "
                f"(expected one of: {', '.join(sorted(PAGE_KEYS))})",
            )
    if not meta.get("title"):
        raise ContentError(rel, 1, "front matter key 'title' is required for a page")
    slug = str(meta.get("slug", slugify(path.stem)))
    if not SLUG_RE.match(slug):
        raise ContentError(
            rel,
            _key_line(text, "slug"),
            f"'slug' must be lowercase letters, digits and dashes, got {slug!r}",
        )
    return Page(
        source=rel,
        slug=slug,
        title=str(meta["title"]),
        lang=str(meta.get("lang", config.language)),
        body=body,
        html=renderer.render(body),
        digest=hashlib.sha256(raw).hexdigest(),
    )


def _markdown_files(folder: Path) -> Iterable[Path]:
    try:
        with os.scandir(folder) as entries:
            names = sorted(
                e.name
                for e in entries
                if e.name.endswith(".md") and not e.name.startswith(".") and e.is_file()
            )
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / name for name in names]


RESERVED_PAGE_SLUGS = {"posts", "tags", "archive", "page", "ap", "static", "feed", "inbox"}


def load(
    config: SiteConfig, *, drafts: bool = False, renderer: MarkdownRenderer | None = None
) -> tuple[list[Post], list[Page]]:
    """Parse every post and page; posts newest first.

    Raises:
        ContentError: for the first broken file (all files are still checked for
            duplicate slugs only after each parses).
    """
    own = renderer is None
    renderer = renderer or MarkdownRenderer(config.cache_dir)
    cache = _ParseCache(config)
    renderer.defer()
    try:
        posts, pages = _load(config, drafts, renderer, cache)
        done = renderer.finish()
    except BaseException:
        renderer.cancel()
        raise
    finally:
        if own:
            renderer.close()
    if done:
        posts = [replace(p, html=done[p.html]) if p.html in done else p for p in posts]
        pages = [replace(p, html=done[p.html]) if p.html in done else p for p in pages]
        cache.rendered(done)
    cache.save()
    return posts, pages


class _ParseCache:
    """Posts and pages as parsed by the last build, reused when a file's bytes, its path
    and the settings are the same (parsing is a pure function of those): a rebuild then
    reads each file and hashes it, but parses only the files that changed.

    A pickle under ``.indiebridge/cache/`` (the site's private state, beside its keys).
    """

    VERSION = "parsed-1"

    def __init__(self, config: SiteConfig) -> None:
        self.path = config.cache_dir / "parsed.pickle"
        # The parsing code is part of the key too: a changed parser must not reuse old Posts.
        h = hashlib.sha256(f"{self.VERSION}\0{RENDER_VERSION}\0{__version__}\0".encode())
        for module in (__file__, posts_module.__file__):
            with contextlib.suppress(OSError, TypeError):
                h.update(Path(str(module)).read_bytes())
        h.update(repr(replace(config, site_dir=Path("."))).encode())
        self.key = h.hexdigest()
        self.old: dict[str, Post | Page] = {}
        self.new: dict[str, Post | Page] = {}
        self.changed = False
        try:
            with self.path.open("rb") as fh:
                key, entries = pickle.load(fh)  # noqa: S301 - our own private cache
            if key == self.key and isinstance(entries, dict):
                self.old = entries
        except (OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError, AttributeError):
            pass  # no cache, an old or a broken one: parse everything

    def get(self, rel: str, raw: bytes, renderer: MarkdownRenderer) -> Post | Page | None:
        item = self.old.get(rel)
        if item is None or item.digest != hashlib.sha256(raw).hexdigest():
            return None
        renderer.cached += 1  # its Markdown comes from a cache, as it would have
        self.new[rel] = item
        return item

    def put(self, rel: str, item: Post | Page) -> None:
        self.new[rel] = item
        self.changed = True

    def rendered(self, done: dict[str, str]) -> None:
        """Swap the placeholders of deferred Markdown for the HTML."""
        for rel, item in self.new.items():
            if item.html in done:
                self.new[rel] = replace(item, html=done[item.html])

    def save(self) -> None:
        if not self.changed and self.new.keys() == self.old.keys():
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                pickle.dump((self.key, self.new), fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs speed


def _render_parallel(texts: list[str], workers: int) -> list[str] | None:
    """Render ``texts`` in forked worker processes; None when that cannot be done here.

    Only from a process with a single thread: forking copies locks held by other threads
    (the daemon builds in a thread, and renders in-process).  Fork, not spawn or
    forkserver, so the workers never import the caller's ``__main__`` again.
    """
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if threading.active_count() > 1:
        return None
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        return None
    chunk = max(1, len(texts) // (workers * 4))
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(_render_in_worker, texts, chunksize=chunk))
    except (OSError, BrokenProcessPool):  # pragma: no cover - render in-process instead
        return None


def _cached(cache: _ParseCache, path: Path, rel: str, renderer: MarkdownRenderer) -> Any:
    try:
        raw = path.read_bytes()
    except OSError:
        return None  # parsing says why
    return cache.get(rel, raw, renderer)


def _load(
    config: SiteConfig, drafts: bool, renderer: MarkdownRenderer, cache: _ParseCache
) -> tuple[list[Post], list[Page]]:
    site = config.site_dir
    posts: list[Post] = []
    seen: dict[str, str] = {}
    folder = config.content_dir / "posts"
    prefix = folder.relative_to(site).as_posix()
    for path in _markdown_files(folder):
        rel = f"{prefix}/{path.name}"
        post = _cached(cache, path, rel, renderer)
        if not isinstance(post, Post):
            post = parse_post(path, rel, config, renderer)
            cache.put(rel, post)
        if post.slug in seen:
            raise ContentError(
                rel,
                _key_line(path.read_text(encoding="utf-8"), "slug"),
                f"duplicate slug '{post.slug}' (also used by {seen[post.slug]})",
            )
        seen[post.slug] = rel
        if post.draft and not drafts:
            continue
        posts.append(post)
    pages: list[Page] = []
    page_seen: dict[str, str] = {}
    folder = config.content_dir / "pages"
    prefix = folder.relative_to(site).as_posix()
    for path in _markdown_files(folder):
        rel = f"{prefix}/{path.name}"
        page = _cached(cache, path, rel, renderer)
        if not isinstance(page, Page):
            page = parse_page(path, rel, config, renderer)
            cache.put(rel, page)
        if page.slug in page_seen or page.slug in RESERVED_PAGE_SLUGS:
            other = page_seen.get(page.slug, "a built-in section")
            raise ContentError(rel, 1, f"duplicate slug '{page.slug}' (also used by {other})")
        page_seen[page.slug] = rel
        pages.append(page)
    posts.sort(key=lambda p: (p.date, p.slug), reverse=True)
    return posts, pages
