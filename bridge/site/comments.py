"""Comments as files: ``content/comments/<post-slug>/<id>.json``, one file per comment.

Comments are data the site is built from, so they live beside the posts: portable,
reviewable in git, and rebuilt into the pages like any other content.  Each file is
written atomically (temporary file + rename), so a crash never leaves half a comment.

The id is derived from what the comment *is* (the remote object id, or the webmention
source and target), so a redelivered activity or a re-sent webmention updates the same
file instead of creating a second one.

Finding a comment by id (``get``) uses an index of id -> post folder
(``bridge.site.comment_index``), built by one scan the first time it is needed, shared by
every store of the process and kept current by this process's writes and deletes; a file
another process adds (a CLI command, a ``git pull``) is found within a second.

Durability: ``write`` syncs each file before returning.  A batch writer (the inbox
processor) uses ``deferring()``: its writes and deletes are done by a thread
(``comment_writer``) while the caller goes on, and skip the per-file ``fsync``;
``take_unsynced()`` (which waits for them to land) + ``sync()`` make a whole batch durable
at once before the batch is recorded as done.  Until a deferred write lands, this store's
reads (``get``, ``exists``) see it; listing reads (``iter_all``, ``by_post``) wait for it.

A post's comments become the threads shown under it in ``bridge.site.threads``.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.site.comment_cache import CommentCache, Folder, cache_for
from bridge.site.comment_index import CommentIndex, index_for, syncfs
from bridge.site.comment_json import from_json as from_json  # re-exported
from bridge.site.comment_json import to_json as to_json  # re-exported
from bridge.site.posts import SLUG_RE, Comment

if TYPE_CHECKING:
    from bridge.site.comment_writer import CommentWriter

_ID_RE = re.compile(r"^[0-9a-f]{1,64}$")
REACTION_TYPES = frozenset({"like", "repost"})
"""Comment types whose page changes may wait for the daemon's next full rebuild."""


def comment_id(protocol: str, key: str) -> str:
    """Stable id: a hash of the protocol and the comment's natural key."""
    return hashlib.sha256(f"{protocol}\0{key}".encode()).hexdigest()[:20]


def comments_dir(content_dir: Path) -> Path:
    return content_dir / "comments"


class CommentStore:
    """Reads and writes comment files of one site."""

    def __init__(self, content_dir: Path) -> None:
        self.root = comments_dir(content_dir)
        self._unsynced: list[Path] | None = None  # a deferring copy's written files
        self._writer: CommentWriter | None = None  # a deferring copy's writing thread
        self._after: dict[str, tuple[Callable[[list[str]], None], dict[str, None]]] | None
        self._after = None  # a deferring copy's ``after_batch`` actions

    @property
    def index(self) -> CommentIndex:
        return index_for(self.root)

    def deferring(self) -> CommentStore:
        """A copy of this store (same class, same index) whose writes skip the ``fsync``
        until ``sync``."""
        from bridge.site.comment_writer import CommentWriter  # the daemon's, not a build's

        other = copy.copy(self)
        other._unsynced = []
        other._writer = CommentWriter()
        other._after = {}
        return other

    def after_batch(self, name: str, action: Callable[[list[str]], None], key: str) -> bool:
        """For a deferring store: call ``action`` (the first given under ``name``) once with
        every ``key`` given under ``name``, when this batch's files have landed, before
        they are flushed and the batch is recorded done (``run_after_batch``); False
        (nothing kept) for an ordinary store."""
        if self._after is None:
            return False
        self._after.setdefault(name, (action, {}))[1][key] = None
        return True

    def run_after_batch(self) -> None:
        """Run what ``after_batch`` kept (call once the batch's files have landed)."""
        if not self._after:
            return
        kept, self._after = self._after, {}
        for action, keys in kept.values():
            action(list(keys))

    def take_unsynced(self) -> list[Path]:
        """The files written since the last call, once the writes asked so far have landed
        (blocks until then; raises the ``OSError`` of one that failed)."""
        if self._unsynced is None:
            return []
        if self._writer is not None:
            self._writer.drain()
        written, self._unsynced = self._unsynced, []
        return written

    def sync(self, written: list[Path]) -> None:
        """Make ``written`` files and their folders durable: one ``syncfs`` on Linux, else
        one ``fsync`` per file and per folder."""
        if not written:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if syncfs(self.root):
            return
        for path in [*dict.fromkeys(written), *dict.fromkeys(p.parent for p in written)]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # deleted since (a Delete in the same batch)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def path(self, post_slug: str, cid: str) -> Path:
        """The file of a comment; slugs and ids are checked so no path leaves the folder."""
        if not SLUG_RE.match(post_slug) or not _ID_RE.match(cid):
            raise ValueError(f"invalid comment location {post_slug!r}/{cid!r}")
        return self.root / post_slug / f"{cid}.json"

    def write(
        self, post_slug: str, comment: Comment, landed: Callable[[], None] | None = None
    ) -> Path:
        """Write one comment file; ``landed`` is called once it is there (at once, or from
        the writing thread of a deferring store).  A comment without ``received`` gets the
        one its file already has (a redelivery, an edit), else now."""
        if comment.received is None:
            found = self.get(comment.id)
            first = found[1].received if found is not None else None
            comment = replace(comment, received=first or dt.datetime.now(dt.UTC))
        path = self.path(post_slug, comment.id)
        data = json.dumps(to_json(comment), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        if self._writer is not None:
            self.index.add(comment.id, post_slug)
            self._writer.write(
                path, data, comment, lambda: self._landed(post_slug, comment, path, landed)
            )
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self.index.add(comment.id, post_slug)
        self._landed(post_slug, comment, None, landed)
        return path

    def _landed(
        self,
        post_slug: str,
        comment: Comment,
        unsynced: Path | None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """A comment file was written or removed (by the writing thread, if deferred)."""
        if unsynced is not None and self._unsynced is not None:
            self._unsynced.append(unsynced)
        if comment.type not in REACTION_TYPES:
            self.cache.note_urgent(post_slug)
        if then is not None:
            then()

    def exists(self, post_slug: str, cid: str) -> bool:
        """Whether the comment's file exists (or a deferred write of it is on its way)."""
        path = self.path(post_slug, cid)
        if self._writer is not None:
            waiting, comment = self._writer.state(path)
            if waiting:
                return comment is not None
        return path.exists()

    def get(self, cid: str) -> tuple[str, Comment] | None:
        """Find a comment by id in any post folder: (post slug, comment)."""
        if not _ID_RE.match(cid):
            return None
        for _ in range(2):  # a stale entry (deleted elsewhere) is dropped and looked up again
            slug = self.index.find(cid)
            if slug is None:
                return None
            path = self.root / slug / f"{cid}.json"
            if self._writer is not None:
                waiting, comment = self._writer.state(path)
                if waiting:
                    return None if comment is None else (slug, comment)
            try:
                return slug, self._read(path)
            except (FileNotFoundError, NotADirectoryError):  # deleted, or never landed
                self.index.forget(cid)
        return None

    def delete(self, cid: str) -> bool:
        found = self.get(cid)
        if found is None:
            return False
        slug, comment = found
        path = self.path(slug, cid)
        self.index.forget(cid)
        if self._writer is not None:
            self._writer.delete(path, lambda: self._landed(slug, comment, None))
            return True
        path.unlink(missing_ok=True)
        self._landed(slug, comment, None)
        return True

    def _settled(self) -> None:
        """Before listing folders: let this store's deferred writes land."""
        if self._writer is not None:
            self._writer.wait()

    @staticmethod
    def _read(path: Path) -> Comment:
        return from_json(json.loads(path.read_text(encoding="utf-8")))

    @property
    def cache(self) -> CommentCache:
        return cache_for(self.root, from_json)

    def iter_all(self) -> Iterable[tuple[str, Comment]]:
        """Every comment, by post folder then file name; broken files are skipped (a
        hand-broken file must not stop the build; ``comments list`` shows it)."""
        self._settled()
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                for comment in self.cache.folder(folder).comments:
                    yield folder.name, comment

    def by_post(self) -> dict[str, list[Comment]]:
        """Comments by post slug, for a build (``refreshing`` may hold some back)."""
        return self.for_build()[0]

    def for_build(self) -> tuple[dict[str, list[Comment]], dict[str, str]]:
        """Comments by post slug and each such post's ``digest``, from one read of each
        folder (so a file landing meanwhile cannot give a digest the comments do not
        match); ``refreshing`` may hold some back."""
        read = self.for_build_lazily()
        out: dict[str, list[Comment]] = {}
        digests: dict[str, str] = {}
        for slug in sorted(read.folders):
            comments = read.get(slug)
            if comments:
                out[slug], digests[slug] = comments, read.digest(slug)
        return out, digests

    def for_build_lazily(self) -> BuildComments:
        """``for_build``, each post's folder read when the build first asks for it.

        The daemon's rebuilds use it: a post's comments are read right before its page is
        rendered, so a reply that lands while a build runs is on its page at the end of
        that build when the build has not reached its post yet, instead of waiting for the
        next one (``BuildComments``)."""
        self._settled()
        return BuildComments(self)

    def refreshing(self, slugs: Iterable[str] | None) -> AbstractContextManager[None]:
        """Builds run by this thread inside read current comments only for ``slugs``
        (``comment_cache``); None: for every post."""
        return self.cache.refreshing(None if slugs is None else frozenset(slugs))


_NONE = Folder((), "")


class BuildComments:
    """One build's comments, read one post at a time (``CommentStore.for_build_lazily``).

    Each folder is read once, the first time ``get`` or ``digest`` names its post, so the
    comments a page shows and the digest its keys hold come from one read.  The folders
    are listed once, when it is made: a post whose first comment lands later has none in
    this build, and its folder's read waits for the next build (which the change that
    wrote it asks for)."""

    def __init__(self, store: CommentStore) -> None:
        self._store = store
        try:
            self.folders = frozenset(e.name for e in os.scandir(store.root) if e.is_dir())
        except OSError:  # no comments folder yet
            self.folders = frozenset()
        self._read: dict[str, Folder] = {}

    def _folder(self, slug: str) -> Folder:
        found = self._read.get(slug)
        if found is None:
            found = _NONE
            if slug in self.folders:
                read = self._store.cache.folder(self._store.root / slug, build=True)
                if read.comments:
                    found = read
            self._read[slug] = found
        return found

    def get(self, slug: str) -> list[Comment]:
        """The post's comments (empty when it has none)."""
        return list(self._folder(slug).comments)

    def digest(self, slug: str) -> str:
        """The digest of the post's comments ("" when it has none): part of its keys."""
        return self._folder(slug).digest

    def file_hashes(self, slug: str) -> dict[str, bytes]:
        """Each of the post's comments' id -> that id, NUL, and the sha256 of its file (of
        every file with that id, should two files give one: a page keyed on it changes
        with either), from the same read as ``get``: what a key made of some of its
        comments hashes (``comment_pages.page_digest``)."""
        read = self._folder(slug)
        out: dict[str, bytes] = {}
        for comment, sha in zip(read.comments, read.hashes, strict=True):
            found = out.get(comment.id)
            out[comment.id] = found + sha if found else comment.id.encode() + b"\0" + sha
        return out

    def read_with_comments(self) -> list[str]:
        """The posts read so far that have comments."""
        return [slug for slug, read in self._read.items() if read.comments]
