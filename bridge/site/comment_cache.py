"""Parsed comment files kept between reads, and what the daemon's last build was given.

A post gone viral has thousands of comment files, and every rebuild and every Undo naming
only an activity id read them all again.  One ``CommentCache`` per comments folder and
process keeps each file's parsed ``Comment`` and the sha256 of its bytes under its stat
stamp (inode, size, modification time in ns): a file is read again only when its stamp
changed.  Files are replaced, never rewritten in place (``CommentStore.write``), so a
changed file always has a new inode.  A folder's digest (part of its post's page keys) is
the sha256 over each file's name and sha256, in name order: the same in every process
that reads the same files, without keeping the files' bytes (about 600 bytes a comment).

It also remembers what each post's comments were when a build last read them (``served``),
for the daemon's rebuilds (``bridge.daemon.rebuild``): during ``refreshing(slugs)``, a
build reads the current comments of ``slugs`` only, and every other post keeps the comments
and digest it was built with, so its pages are not rendered again.  A reply's page is then
rebuilt at once while a flood of likes on every other post waits for the next full build.
Outside ``refreshing`` every read is current.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.site.posts import Comment

_STAMP = struct.Struct("<QQq")  # inode, size, modification time in ns
_NAME = operator.attrgetter("name")

Entry = tuple[bytes, Comment | None]
"""A file as read: its packed stamp followed by the sha256 of its bytes, and its parsed
comment (None for a broken file)."""


@dataclass(frozen=True)
class Folder:
    """One post's comments as read at one moment: parsed (sorted by file name), the
    sha256 of each one's file (in the same order) and the folder's digest."""

    comments: tuple[Comment, ...]
    digest: str
    hashes: tuple[bytes, ...] = ()


class CommentCache:
    """Parsed comment files of one comments folder (see the module docstring)."""

    def __init__(self, parse: Callable[[dict[str, Any]], Comment]) -> None:
        self.parse = parse
        self.files: dict[str, dict[str, Entry]] = {}
        """Folder -> file name without ``.json`` -> what was read (``Entry``)."""
        self.served: dict[str, Folder] = {}
        self.only: frozenset[str] = frozenset()
        self.refresher: int | None = None  # the thread ``refreshing`` applies to
        self.urgent: set[str] = set()
        """Posts with a change readers see first (a reply written or removed, not a like)
        that no build has read yet."""
        self.urgent_lock = threading.Lock()
        self.on_urgent: Callable[[], None] | None = None
        """Called (from any thread) when a post becomes urgent: the daemon's rebuilder."""
        self.forward: Callable[[str], None] | None = None
        """Set where another process builds (``bridge.daemon.rebuild_process``): an urgent
        post is handed to it instead of being kept here."""
        self.lock = threading.RLock()

    def folder(self, path: Path, *, build: bool = False) -> Folder:
        """The comments of one post folder, current; for a ``build``, those a refresh holds
        back (and a build's current read is what later refreshes hold back)."""
        slug = path.name
        if build:
            with self.lock:
                if self.refresher == threading.get_ident() and slug not in self.only:
                    held = self.served.get(slug)
                    if held is not None:
                        return held
            with self.urgent_lock:  # before the listing: a later write adds it again
                self.urgent.discard(slug)
        current = self._read(path)
        if build:
            with self.lock:
                self.served[slug] = current
        return current

    def note_urgent(self, slug: str) -> None:
        """A change readers see first was written under ``slug``."""
        forward = self.forward
        if forward is not None:
            forward(slug)
        else:
            self.mark_urgent(slug)

    def mark_urgent(self, slug: str) -> None:
        """Wait with ``slug`` for the next build (the rebuild process: what it was told)."""
        with self.urgent_lock:
            self.urgent.add(slug)
        waker = self.on_urgent
        if waker is not None:
            waker()

    def urgent_slugs(self) -> frozenset[str]:
        with self.urgent_lock:
            return frozenset(self.urgent)

    def _read(self, path: Path) -> Folder:
        """Read a folder, parsing only files whose stamp changed (no lock is held while
        reading: two threads reading one folder at once both get a current result)."""
        h = hashlib.sha256()
        comments: list[Comment] = []
        hashes: list[bytes] = []
        known = self.files.get(str(path), {})
        fresh: dict[str, Entry] = {}
        try:
            entries = sorted((e for e in os.scandir(path) if e.name.endswith(".json")), key=_NAME)
        except OSError:
            entries = []
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            stamp = _STAMP.pack(st.st_ino, st.st_size, st.st_mtime_ns)
            stem = entry.name[:-5]
            cached = known.get(stem)
            if cached is None or not cached[0].startswith(stamp):
                try:
                    with open(entry.path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                cached = (stamp + hashlib.sha256(data).digest(), self._parse(data))
            parsed = cached[1]
            # keyed by the file's stem, which is the comment's id: kept once, not twice
            fresh[parsed.id if parsed is not None and parsed.id == stem else stem] = cached
            h.update(entry.name.encode() + b"\0" + cached[0][_STAMP.size :])
            if cached[1] is not None:
                comments.append(cached[1])
                hashes.append(cached[0][_STAMP.size :])
        self.files[str(path)] = fresh  # files gone from the folder are forgotten
        return Folder(tuple(comments), h.hexdigest(), tuple(hashes))

    def _parse(self, data: bytes) -> Comment | None:
        try:
            return self.parse(json.loads(data.decode("utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # a hand-broken file must not stop the build; `comments list` shows it

    @contextlib.contextmanager
    def refreshing(self, slugs: frozenset[str] | None) -> Iterator[None]:
        """Reads by this thread inside see current comments for ``slugs`` only (all when
        None) and, for other posts already read, what was read last; other threads (the
        inbox's handlers) always read current comments."""
        if slugs is None:
            yield
            return
        with self.lock:
            self.only, self.refresher = slugs, threading.get_ident()
        try:
            yield
        finally:
            with self.lock:
                self.only, self.refresher = frozenset(), None


_CACHES: dict[Path, CommentCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(root: Path, parse: Callable[[dict[str, Any]], Comment]) -> CommentCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(root)
        if cache is None:
            cache = _CACHES[root] = CommentCache(parse)
        return cache
