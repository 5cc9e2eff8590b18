"""Markdown into HTML: the site's converter, and the cache of rendered bodies.

The converter is ``MD_EXTENSIONS`` with the inline passes and the block parser prescanned
(``markdown_inline``, ``markdown_blocks``: the same bytes as the stock ones).  Rendered
HTML is cached by the hash of a body and the Markdown settings (``cache_key``) in
``.indiebridge/cache/markdown.sqlite3`` (``MarkdownRenderer``), so an unchanged body is
never rendered twice; forked parse workers render with their own converter
(``render_in_worker``) and add their rows through their own connection
(``store_rendered``).  ``bridge.site.content`` reads the files and uses these.

The same file keeps each front matter block's mapping by its text (``_YamlCache``), so a
post whose front matter did not change is read without PyYAML.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import markdown

from bridge.site import frontmatter
from bridge.site.cache_log import close_keeping_log, open_wal

MD_EXTENSIONS = ["extra", "sane_lists", "smarty"]
# Bump when the Markdown settings change, so cached HTML is re-rendered.  The prescanning
# passes render the same bytes as the stock ones (markdown_inline, markdown_blocks), so
# they are not part of it.
RENDER_VERSION = "md1:" + ",".join(MD_EXTENSIONS) + ":" + markdown.__version__


def new_converter() -> markdown.Markdown:
    """The site's Markdown converter: ``MD_EXTENSIONS``, with the inline passes and the
    block parser prescanned (imported here: a build whose bodies are cached needs neither)."""
    from bridge.site import markdown_inline

    return markdown.Markdown(
        extensions=[*_extension_objects(), markdown_inline.PrescanExtension()],
        output_format="html",
    )


def _extension_objects() -> list[markdown.extensions.Extension]:
    """``MD_EXTENSIONS`` as objects, ``extra`` unfolded into its parts in its own order.

    Named, each extension is first looked up among every installed package's entry
    points (``markdown.util.get_installed_extensions``: a scan of all installed
    distributions' metadata, about 8 ms on a small environment, more on a large one), which
    a one-post rebuild paid on every run.  ``extra`` itself only registers its parts by
    name with an empty configuration, as this does.  The converters' processors and
    output are compared with the named set in ``tests/site/test_markdown_inline.py``.
    """
    import importlib

    from markdown.extensions import extra

    from bridge.site.markdown_pygments import import_fenced_code

    import_fenced_code()  # without Pygments, which this converter never calls
    names = [
        part for name in MD_EXTENSIONS for part in (extra.extensions if name == "extra" else [name])
    ]
    made: list[markdown.extensions.Extension] = []
    for name in names:
        module = importlib.import_module(f"markdown.extensions.{name}")
        made.append(module.makeExtension())
    return made


def cache_key(text: str) -> str:
    """A Markdown body's key in the cache: its hash with the Markdown settings'."""
    return hashlib.sha256((RENDER_VERSION + "\0" + text).encode()).hexdigest()


_worker_md: markdown.Markdown | None = None


def render_in_worker(text: str) -> str:
    global _worker_md
    if _worker_md is None:
        _worker_md = new_converter()
    return _worker_md.reset().convert(text)


class MarkdownRenderer:
    """Markdown -> HTML with a content-hash cache on disk (one SQLite file), which also
    holds each front matter block's mapping by its text (``yaml``).

    With ``defer()``, a body missing from the cache is not rendered at once: ``render``
    returns a placeholder and ``finish()`` renders them all and maps each placeholder to
    its HTML (so a broken file fails before any Markdown).  Many files to parse (a first
    build) are parsed and rendered in forked workers instead (``parse_pool``).

    The cache was one file per body; creating and opening thousands of small files cost
    more than a second per thousand posts on ordinary disks, a single file a few ms.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self._converter: markdown.Markdown | None = None  # made when a body is not cached
        self.cache_path = cache_dir / "markdown.sqlite3" if cache_dir else None
        self.rendered = 0
        self.cached = 0
        self._con: sqlite3.Connection | None = None
        self._deferring = False
        self._pending: dict[str, str] = {}  # placeholder -> Markdown
        self.yaml = _YamlCache(self._db)

    def _md(self) -> markdown.Markdown:
        # Setting up the extensions takes ~35 ms: not worth it when every body is cached.
        if self._converter is None:
            self._converter = new_converter()
        return self._converter

    def _db(self) -> sqlite3.Connection | None:
        if self._con is None and self.cache_path is not None:
            try:
                con = open_wal(self.cache_path, timeout=30, isolation_level=None)
                con.execute("CREATE TABLE IF NOT EXISTS html (key TEXT PRIMARY KEY, html TEXT)")
                con.execute("CREATE TABLE IF NOT EXISTS yaml (key TEXT PRIMARY KEY, data BLOB)")
            except (OSError, sqlite3.Error):
                self.cache_path = None  # a cache that cannot be opened only costs speed
                return None
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None and self.cache_path is not None:
            close_keeping_log(self._con, self.cache_path)  # no checkpoint at each close
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
        htmls = [self._md().reset().convert(text) for text in texts]
        self._store(list(zip(texts, htmls, strict=True)))
        return dict(zip(pending, htmls, strict=True))

    def _key(self, text: str) -> str:
        return cache_key(text)

    def keys(self) -> frozenset[str]:
        """The keys of every body in the cache (``cache_key``), for workers that must
        know what is cached without opening the database after a fork."""
        con = self._db()
        if con is None:
            return frozenset()
        try:
            return frozenset(row[0] for row in con.execute("SELECT key FROM html"))
        except sqlite3.Error:
            return frozenset()

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
        html = self._md().reset().convert(text)
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


def pickle_mapping(data: dict[str, Any]) -> bytes | None:
    """A front matter mapping pickled for the cache; None for one too deep to pickle (a
    list nested 500 deep parses, and is then parsed again each time)."""
    try:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except (RecursionError, pickle.PicklingError, TypeError, ValueError):
        return None


class _YamlCache:
    """Front matter mappings by their text (``frontmatter.ParsedYaml``) and the loader's
    version (``frontmatter.yaml_version``), pickled: YAML gives dates and datetimes.  A
    row that cannot be read is parsed again."""

    def __init__(self, db: Callable[[], sqlite3.Connection | None]) -> None:
        self._db = db

    @staticmethod
    def key(raw: str) -> str:
        return hashlib.sha256(f"{frontmatter.yaml_version()}\0{raw}".encode()).hexdigest()

    def get(self, raw: str) -> dict[str, Any] | None:
        con = self._db()
        if con is None:
            return None
        try:
            row = con.execute("SELECT data FROM yaml WHERE key = ?", (self.key(raw),)).fetchone()
            data = pickle.loads(row[0]) if row is not None else None  # noqa: S301 - our cache
        except (sqlite3.Error, pickle.PickleError, EOFError, ValueError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, raw: str, data: dict[str, Any]) -> None:
        con = self._db()
        if con is None:
            return
        pickled = pickle_mapping(data)
        if pickled is None:
            return
        with contextlib.suppress(sqlite3.Error):  # a cache that cannot be written
            con.execute(
                "INSERT OR REPLACE INTO yaml(key, data) VALUES (?, ?)", (self.key(raw), pickled)
            )


_store_con: tuple[int, Path, sqlite3.Connection] | None = None  # (pid, path, connection)


def store_rendered(
    cache_path: Path | None,
    rendered: list[tuple[str, str]],
    front_matter: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Add (key, HTML) rows and (text, pickled mapping) front matter to the Markdown cache at
    ``cache_path`` through this process's own connection (a forked worker's, never one
    its parent opened; kept for the worker's next rows, as closing the last connection
    checkpoints and deletes the WAL file)."""
    global _store_con
    if cache_path is None:
        return
    if _store_con is None or _store_con[:2] != (os.getpid(), cache_path):
        try:
            con = sqlite3.connect(cache_path, timeout=30, isolation_level=None)
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            return
        _store_con = (os.getpid(), cache_path, con)
    con = _store_con[2]
    with contextlib.suppress(sqlite3.Error):  # a cache that cannot be written only costs speed
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR REPLACE INTO html(key, html) VALUES (?, ?)", rendered)
            con.executemany(
                "INSERT OR REPLACE INTO yaml(key, data) VALUES (?, ?)",
                [(_YamlCache.key(raw), pickled) for raw, pickled in front_matter],
            )
        finally:
            con.execute("COMMIT")
