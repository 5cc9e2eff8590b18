"""The parse cache: each post and page as the last build parsed it, one SQLite row each.

Parsing is a pure function of a file's bytes, its path and the settings, so a row is
reused while those stay the same:

* a row is found by the file's (size, mtime_ns): an unchanged file is neither read nor
  hashed.  When the stat differs, the file is read and hashed, and a matching hash still
  reuses the row (a touched file; only its stat is written).  A stat taken within
  ``RACY_NS`` of the scan is not trusted (a same-size write in the same clock tick keeps
  the mtime): that row is checked by its hash next time;
* a cached post's body and HTML (most of its size) stay in the database until something
  reads them (``StoredPost``): a build that renders one post's pages reads one post's
  text, not 10,000;
* only changed rows are written; the rows of deleted files are deleted;
* the key (table ``meta``) covers the parsing code, the Markdown settings and the site's
  settings: another key empties the tables.  A broken or foreign file is replaced, and a
  cache that cannot be opened or written only costs speed.

``.indiebridge/cache/parsed.sqlite3``, the site's private state beside its keys.  It
replaced one pickle of every post (117 MB at 10,000 posts), which every build loaded and
saved whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import marshal
import os
import pickle
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import SiteConfig
from bridge.site import parse_resident
from bridge.site.parse_resident import (
    _open_cache,
    _resident_for,
    _residents,
    _Texts,
    forget_resident,
    take_watched,
    watched,
)
from bridge.site.posts import Image, Page, Post

__all__ = ["ParseCache", "StoredPost", "forget_resident", "might_mention", "watched"]

_LAZY = ("body", "html")
_POST_FIELDS = tuple(f.name for f in dataclasses.fields(Post))


class StoredPost(Post):
    """A ``Post`` from the parse cache whose ``body`` and ``html`` are read when first
    used; otherwise it is a ``Post`` (equal to the parsed one, pickled as a plain one)."""

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        if name in _LAZY and "_texts" in state:
            body, html = state["_texts"].fetch(state["source"], state["digest"])
            object.__setattr__(self, "body", body)
            object.__setattr__(self, "html", html)
            return state[name]
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Post):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _POST_FIELDS)

    __hash__ = Post.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_plain_post, (tuple(getattr(self, name) for name in _POST_FIELDS),))


def _plain_post(values: tuple[Any, ...]) -> Post:
    return Post(**dict(zip(_POST_FIELDS, values, strict=True)))


def might_mention(post: Post) -> bool:
    """Whether the post's HTML holds an ``@`` (a mention needs one), without reading the
    HTML of a cached post."""
    at = post.__dict__.get("_at")
    return ("@" in post.html) if at is None else bool(at)


class ParseCache:
    """See the module docstring: ``get`` a file's cached item, ``put`` a parsed one,
    ``save`` the changed rows."""

    VERSION = "parsed-2"
    RACY_NS = 2_000_000_000

    def __init__(self, config: SiteConfig, render_version: str, modules: Iterable[str]) -> None:
        """``render_version``: the Markdown settings; ``modules``: the files of the
        parsing code, part of the key too (a changed parser must not reuse old Posts)."""
        self.path = config.cache_dir / "parsed.sqlite3"
        h = hashlib.sha256(f"{self.VERSION}\0{render_version}\0{__version__}\0".encode())
        for module in (
            __file__,
            parse_resident.__file__,
            *modules,
        ):  # these two: the shape of a row
            with contextlib.suppress(OSError, TypeError):
                h.update(Path(str(module)).read_bytes())
        h.update(repr(dataclasses.replace(config, site_dir=Path("."))).encode())
        self.key = h.hexdigest()
        self.scan_ns = time.time_ns()
        # rel -> (size, mtime_ns, digest, kind, data): one query, not one per file
        self.old: dict[str, tuple[int, int, str, str, bytes]] = {}
        self.new: dict[str, Post | Page] = {}
        self.stats: dict[str, tuple[int, int]] = {}  # rel -> the stat to record
        self.dirty: set[str] = set()  # rows whose stat changed
        self.parsed: list[str] = []  # parsed by this build (not from the cache)
        self.items: dict[str, Post | Page] = {}  # rel -> item made from its row (resident)
        with contextlib.suppress(OSError):  # the whole-file cache this replaced (117 MB)
            (config.cache_dir / "parsed.pickle").unlink(missing_ok=True)
        # The names a watcher saw written since its last build (``watched``), or None.
        self.trusted: frozenset[str] | None = None
        names = take_watched(self.path)
        self._resident = _resident_for(self.path, self.key)
        if self._resident is not None:  # this process's own: rows and items in memory
            self._con: sqlite3.Connection | None = self._resident.con
            self._texts = self._resident.texts
            self.old, self.items = self._resident.rows, self._resident.items
            if not self._resident.reloaded:  # rows only this process wrote since then
                self.trusted = names
            return
        self._texts = _Texts(self.path)
        self._con = _open_cache(self.path, self.key)
        if self._con is not None:
            try:
                rows = self._con.execute(
                    "SELECT rel, size, mtime_ns, digest, kind, data FROM items"
                )
                self.old = {row[0]: row[1:] for row in rows}
            except sqlite3.Error:
                self._con = None

    def _stat(self, path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self.scan_ns - st.st_mtime_ns < self.RACY_NS:
            return (-1, -1)  # too recent to vouch for the bytes: hashed next time
        return (st.st_size, st.st_mtime_ns)

    def get(self, path: str, rel: str) -> Post | Page | None:
        row = self.old.get(rel)
        trusted = self.trusted
        if trusted is not None and row is not None and path.rpartition("/")[2] not in trusted:
            return self._found(rel, row, (row[0], row[1]))  # not written: no stat
        stat = self._stat(path)
        if row is None or stat is None:
            return None  # (a file that cannot be stat'ed: parsing says why)
        if stat[0] < 0 or stat != row[:2]:
            try:
                with open(path, "rb") as fh:
                    raw = fh.read()
            except OSError:
                return None
            if hashlib.sha256(raw).hexdigest() != row[2]:
                return None
            if stat != row[:2]:
                self.dirty.add(rel)  # same bytes, new stat: only the stat is written
        return self._found(rel, row, stat)

    def _found(
        self, rel: str, row: tuple[int, int, str, str, bytes], stat: tuple[int, int]
    ) -> Post | Page | None:
        item = self.items.get(rel)
        if item is None or item.digest != row[2]:
            item = self._item(row[2], row[3], row[4])
            if item is None:
                return None
            self.items[rel] = item
        self.new[rel] = item
        self.stats[rel] = stat
        return item

    def _item(self, digest: str, kind: str, data: bytes) -> Post | Page | None:
        try:
            state = _decode(kind, data)
        except (ValueError, TypeError, EOFError, ImportError, AttributeError, pickle.PickleError):
            return None
        if kind == "page":
            return state if isinstance(state, Page) else None
        if not isinstance(state, dict) or state.get("digest") != digest:
            return None
        post = StoredPost.__new__(StoredPost)
        post.__dict__.update(state, _texts=self._texts)
        return post

    def put(self, path: str, rel: str, item: Post | Page) -> None:
        self.new[rel] = item
        self.stats[rel] = self._stat(path) or (-1, -1)
        self.parsed.append(rel)

    def post(self, rel: str) -> Post:
        item = self.new[rel]
        assert isinstance(item, Post), rel
        return item

    def tag_parsed(self, tag: Callable[[Post], Post]) -> None:
        """Link the inline hashtags of the posts parsed by this build (``inline_tags``);
        kept so, the cache spares the next builds the scan (1-2 ms a post)."""
        for rel in self.parsed:
            item = self.new[rel]
            if isinstance(item, Post):
                self.new[rel] = tag(item)

    def rendered(self, done: dict[str, str]) -> None:
        """Swap the placeholders of deferred Markdown for the HTML."""
        for rel in self.parsed:
            item = self.new[rel]
            if item.html in done:
                self.new[rel] = dataclasses.replace(item, html=done[item.html])

    def save(self) -> None:
        """Write the parsed rows and changed stats; delete the rows of files gone."""
        gone = [rel for rel in self.old if rel not in self.new]
        con = self._con
        if con is None or not (self.parsed or self.dirty or gone):
            return
        items, texts, stale = [], [], []
        for rel in self.parsed:
            item = self.new[rel]
            if isinstance(item, Post):
                kind, data = _encode(item)
                texts.append((rel, item.digest, item.body, item.html))
            else:
                kind, data = "page", pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            items.append((rel, *self.stats[rel], item.digest, kind, data))
            old = self.old.get(rel)
            if old is not None and old[2] != item.digest:
                stale.append((rel, old[2]))
        try:
            with con:
                con.executemany("DELETE FROM items WHERE rel = ?", [(r,) for r in gone])
                con.executemany("DELETE FROM texts WHERE rel = ?", [(r,) for r in gone])
                con.executemany("DELETE FROM texts WHERE rel = ? AND digest = ?", stale)
                con.executemany("INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?)", texts)
                con.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)", items)
                con.executemany(
                    "UPDATE items SET size = ?, mtime_ns = ? WHERE rel = ?",
                    [(*self.stats[rel], rel) for rel in self.dirty if rel not in self.parsed],
                )
        except sqlite3.Error:
            self._drop_resident()  # a cache that cannot be written only costs speed
            return
        if self._resident is not None:  # what the database now holds, kept in memory
            for rel in gone:
                self.old.pop(rel, None)
                self.items.pop(rel, None)
            for rel, size, mtime, digest, kind, data in items:
                self.old[rel] = (size, mtime, digest, kind, data)
                self.items[rel] = self.new[rel]
            for rel in self.dirty:
                if rel not in self.parsed:
                    self.old[rel] = (*self.stats[rel], *self.old[rel][2:])

    def _drop_resident(self) -> None:
        if self._resident is not None:
            _residents.pop(str(self.path), None)
            self._resident = None

    def close(self) -> None:
        if self._resident is not None:
            self._resident.release()
        elif self._con is not None:
            self._con.close()
        self._con = None


# A post's row: its fields but the body and HTML, as plain values for ``marshal`` (an
# unpickling per row, resolving Post, datetime and Image each time, was a quarter of a
# no-op build at 10,000 posts); a post with a value of another shape is pickled.
_MARSHALLED = tuple(name for name in _POST_FIELDS if name not in _LAZY)


def _encode(post: Post) -> tuple[str, bytes]:
    values: list[Any] = []
    for name in _MARSHALLED:
        value = getattr(post, name)
        if isinstance(value, dt.datetime):  # a fixed offset comes back as it was
            fixed = value.tzinfo is None or type(value.tzinfo) is dt.timezone
            value = ("dt", value.isoformat()) if fixed else value
        elif name == "images":
            value = tuple((i.url, i.alt, i.media_type) for i in value)
        values.append(value)
    values.append("@" in post.html)
    try:
        return "post-m", marshal.dumps(tuple(values))
    except ValueError:  # not plain values (a quote card): the slower way
        state = {name: getattr(post, name) for name in _MARSHALLED}
        state["_at"] = values[-1]
        return "post", pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def _decode(kind: str, data: bytes) -> Any:
    if kind != "post-m":
        return pickle.loads(data)  # noqa: S301 - our own private cache
    values = marshal.loads(data)  # noqa: S302 - our own private cache
    if not isinstance(values, tuple) or len(values) != len(_MARSHALLED) + 1:
        raise ValueError("not a row of this version")
    state = dict(zip(_MARSHALLED, values, strict=False))
    for name in ("date", "updated"):
        if isinstance(state[name], tuple):
            state[name] = dt.datetime.fromisoformat(state[name][1])
    state["images"] = tuple(Image(*i) for i in state["images"])
    state["_at"] = values[-1]
    return state
