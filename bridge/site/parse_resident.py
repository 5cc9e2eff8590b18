"""What a process keeps of its parse cache between builds, and the cache file's connection.

* ``_Texts`` reads a cached post's body and HTML when first used;
* ``_Resident``: in a long-lived process (``serve --watch``, the daemon) the rows and the
  items made from them stay in memory while no other connection wrote to the file;
* ``watched``: a watcher's list of the files written since its last build, which lets
  that build skip the stat of every other file (``ParseCache.get``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site.cache_log import close_keeping_log, open_wal

if TYPE_CHECKING:
    from bridge.site.posts import Page, Post


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
        self.reloaded = True  # the rows were (re)read from the file by the last check

    def current(self) -> bool:
        try:
            if os.stat(self.path).st_ino != self.inode:
                return False
            (version,) = self.con.execute("PRAGMA data_version").fetchone()
        except (OSError, sqlite3.Error):
            return False
        self.reloaded = version != self.version
        if not self.reloaded:
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

# (cache path, thread) -> the file names a watcher saw written since its previous build
_watched: dict[tuple[str, int], frozenset[str]] = {}


def watched(config: SiteConfig, names: Iterable[str] | None) -> None:
    """A watcher's word for its next build of ``config``'s site, from this thread: the
    names of the files written since its previous build started (``serve --watch``), or
    None when it cannot tell.  That build then takes an unchanged row of a file not named
    without a stat, when this process's resident rows are what it last wrote itself;
    a name a watcher missed would keep its old row until a build without a word."""
    key = (str(config.cache_dir / "parsed.sqlite3"), threading.get_ident())
    if names is None:
        _watched.pop(key, None)
    else:
        _watched[key] = frozenset(names)


def take_watched(path: Path) -> frozenset[str] | None:
    """The word ``watched`` left for the cache at ``path`` from this thread (taken once)."""
    return _watched.pop((str(path), threading.get_ident()), None)


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
    """Drop what this process keeps of every parse cache (as a fresh process starts);
    also at exit, so the connections close without a checkpoint (``cache_log``)."""
    for resident in list(_residents.values()):
        if resident.lock.acquire(blocking=False):
            close_keeping_log(resident.con, resident.path)
            resident.lock.release()
    _residents.clear()


atexit.register(forget_resident)


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
            # One build at a time uses a connection, but a resident one may serve builds
            # from more than one thread (the daemon's).
            con = open_wal(path, timeout=30, check_same_thread=False)
        except OSError:
            return None
        except sqlite3.Error:  # not a database SQLite can use
            if attempt:
                return None
            _remove(path)
            continue
        try:
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
            _remove(path)
    return None


def _remove(path: Path) -> None:
    """Remove a cache database that cannot be used, so it is made afresh."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()
