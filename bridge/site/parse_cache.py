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
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site.posts import Image, Page, Post

__all__ = ["ParseCache", "StoredPost", "might_mention"]

_LAZY = ("body", "html")
_POST_FIELDS = tuple(f.name for f in dataclasses.fields(Post))


class _Texts:
    """Reads a cached post's body and HTML on first use; its own connection per process
    (a forked worker never uses its parent's) and a lock for the daemon's threads.  After
    ``BULK`` single reads, the rest are read in one query: something is going through
    every post (``publish`` looks for mentions), and one query each would cost more than
    the whole-file cache did."""

    BULK = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = 0
        self._reads = 0
        self._all: dict[tuple[str, str], tuple[str, str]] | None = None

    def fetch(self, rel: str, digest: str) -> tuple[str, str]:
        with self._lock:
            found = self._all.pop((rel, digest), None) if self._all is not None else None
            if found is None:
                found = self._read(rel, digest)
        if found is None:  # another build replaced it since this one read the file's row
            raise ContentError(rel, 1, "changed while the site was being built; build again")
        return found

    def _read(self, rel: str, digest: str) -> tuple[str, str] | None:
        try:
            if self._con is None or self._pid != os.getpid():
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._pid, self._reads, self._all = os.getpid(), 0, None
            self._reads += 1
            if self._reads == self.BULK and self._all is None:
                rows = self._con.execute("SELECT rel, digest, body, html FROM texts")
                self._all = {(r, d): (str(b), str(h)) for r, d, b, h in rows}
                return self._all.pop((rel, digest), None)
            row = self._con.execute(
                "SELECT body, html FROM texts WHERE rel = ? AND digest = ?", (rel, digest)
            ).fetchone()
        except sqlite3.Error:
            return None
        return (str(row[0]), str(row[1])) if row else None


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
        for module in (__file__, *modules):  # this module: the shape of a row
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
        self._resident = _resident_for(self.path, self.key)
        if self._resident is not None:  # this process's own: rows and items in memory
            self._con: sqlite3.Connection | None = self._resident.con
            self._texts = self._resident.texts
            self.old, self.items = self._resident.rows, self._resident.items
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


class _Resident:
    """The cache as this process last read or wrote it: its connection, its rows, and
    the items made from them, valid while no other connection wrote to the file (SQLite's
    ``data_version``) and the file is the same (its inode).  One build at a time uses it;
    a build running beside another in the same process reads the file itself."""

    def __init__(self, path: Path, key: str, con: sqlite3.Connection) -> None:
        self.path, self.key, self.con = path, key, con
        self.texts = _Texts(path)
        self.rows: dict[str, tuple[int, int, str, str, bytes]] = {}
        self.items: dict[str, Post | Page] = {}
        self.lock = threading.Lock()
        self.inode = os.stat(path).st_ino
        self.version = -1

    def current(self) -> bool:
        try:
            if os.stat(self.path).st_ino != self.inode:
                return False
            (version,) = self.con.execute("PRAGMA data_version").fetchone()
        except (OSError, sqlite3.Error):
            return False
        if version == self.version:
            return True
        try:
            rows = self.con.execute("SELECT rel, size, mtime_ns, digest, kind, data FROM items")
            self.rows = {row[0]: row[1:] for row in rows}
        except sqlite3.Error:
            return False
        self.items = {}
        self.version = version
        return True

    def release(self) -> None:
        self.lock.release()


_residents: dict[str, _Resident] = {}


def _resident_for(path: Path, key: str) -> _Resident | None:
    """This process's resident cache at ``path`` for ``key``, locked for one build; None
    when another build of this process holds it or the file cannot be used."""
    resident = _residents.get(str(path))
    if resident is not None:
        if not resident.lock.acquire(blocking=False):
            return None
        if resident.key == key and resident.current():
            return resident
        _residents.pop(str(path), None)
        with contextlib.suppress(sqlite3.Error):
            resident.con.close()
    con = _open_cache(path, key)
    if con is None:
        return None
    try:
        resident = _Resident(path, key, con)
        resident.lock.acquire()
        if not resident.current():
            raise sqlite3.DatabaseError("not readable")
    except (OSError, sqlite3.Error):
        con.close()
        return None
    _residents[str(path)] = resident
    return resident


def forget_resident() -> None:
    """Drop what this process keeps of every parse cache (as a fresh process starts)."""
    for resident in list(_residents.values()):
        if resident.lock.acquire(blocking=False):
            resident.con.close()
            resident.lock.release()
    _residents.clear()


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


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items (rel TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
    " digest TEXT, kind TEXT, data BLOB)",
    "CREATE TABLE IF NOT EXISTS texts (rel TEXT, digest TEXT, body TEXT, html TEXT,"
    " PRIMARY KEY (rel, digest))",
)


def _open_cache(path: Path, key: str) -> sqlite3.Connection | None:
    """The parse cache for ``key``: emptied when it was made for another key, made anew
    when the file is not a usable database (a broken file is never an error)."""
    for attempt in range(2):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One build at a time uses a connection, but a resident one may serve builds
            # from more than one thread (the daemon's).
            con = sqlite3.connect(path, timeout=30, check_same_thread=False)
        except (OSError, sqlite3.Error):
            return None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            with con:
                con.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
                row = con.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
                if row is None or row[0] != key:  # another parser or shape: start afresh
                    con.execute("DROP TABLE IF EXISTS items")
                    con.execute("DROP TABLE IF EXISTS texts")
                    con.execute("INSERT OR REPLACE INTO meta VALUES ('key', ?)", (key,))
                for statement in _SCHEMA:
                    con.execute(statement)
            return con
        except sqlite3.Error:
            con.close()
            if attempt:
                return None
            for suffix in ("", "-wal", "-shm"):  # not a database we can use: start afresh
                with contextlib.suppress(OSError):
                    Path(f"{path}{suffix}").unlink()
    return None
