"""Rendered comment cards kept between builds: a post with thousands of replies renders
again only the cards that changed.

The daemon rebuilds a post's page on every reply it receives, and the page shows every
reply.  Under the inbox benchmark's load (50 posts with about 340 replies each, replies
arriving on all of them) a rebuild rendered 16,000 cards: ``_comment.html`` was 1.7 s of a
2.2 s profiled build, for cards that were the same as in the build before.

``_comments.html`` prints each reply with ``comment_html(node)`` (``_comment.html``, which
prints its nested replies the same way) and each like, boost or bookmark in the facepiles
with ``reaction_html(r, kind)`` (``_reaction.html``): a viral post gathers likes as fast
as replies.  A card is the output of its template for the values passed, and depends on
nothing but:

* the templates in effect for it (``Renderer.template_digest``) and the code of the
  filters it calls (``pages``, ``sanitize``) and of this module;
* the site variables every template sees (``site``, ``menu``, ``live_reload``);
* the context variables the template reads, found with
  ``jinja2.meta.find_undeclared_variables`` over it and every template it includes: in
  the default theme the values passed and ``url``.

A card's key hashes all three, so a card is reused only where rendering it again would
give the same text.  When the template reads a variable outside ``KEYED`` (a theme whose
card shows ``post``, say), or names a template by a variable, nothing is kept: each card
renders as an ``include`` of the template would, from the page's context.

Cards live in one SQLite file under the cache folder, one row per (page, key), a page
being a post's (its slug) or one of its older comment pages (``<slug>#<n>``,
``comment_pages``).  A page reads its rows with one query and writes the cards it rendered in one
transaction; rows no render used are dropped once they outnumber the used ones (a hit on
a card leaves the rows of its nested cards unused, so they are kept that long), and the
rows of a post with no comment left after a build (``CardFile.prune``).  Between builds
a process keeps only the hash of each comment a page printed (``CardFile.digests``),
and an unusable file only costs the time to render.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from bridge.site.cache_log import open_wal
from bridge.site.posts import Comment
from bridge.site.threads import Thread

FILE = "comment-cards.sqlite3"
PRUNE_EVERY = 600.0  # seconds between two looks for the cards of posts gone
VERSION = "cards-3"

CALLS = {
    "comment_html": ("_comment.html", ("node",)),
    "reaction_html": ("_reaction.html", ("r", "kind")),
}
"""Function -> (the template it prints, the names its arguments take in the template)."""

KEYED = frozenset({"node", "r", "kind", "url", "ap_id"})
"""Context variables a card may read and still be kept: their values are in its key."""
_HELD = frozenset({*CALLS, "site", "menu", "live_reload"})
"""Read by a card without changing its key: the function itself and the site variables,
which are in every key (``Cards.base``).  They must be: ``find_undeclared_variables``
does not report a name the environment has among its globals (nor Jinja's own, such
as ``range``), so which of them a card reads cannot be known
(tests/site/test_comment_cards.py)."""


LIBRARIES = ("nh3", "jinja2", "markupsafe")
"""Libraries whose version is part of every key: the cleaner (a security fix in it must
clean every comment again) and the template engine and its escaping."""


def _code_digest(files: tuple[str, ...]) -> bytes:
    """The code a card's text depends on besides its templates: the filters' modules and
    ``LIBRARIES``."""
    from importlib import metadata

    h = hashlib.sha256(VERSION.encode())
    for module in (__file__, *files):
        with contextlib.suppress(OSError):
            h.update(Path(module).read_bytes())
    for library in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            h.update(f"\0{library} {metadata.version(library)}".encode())
    return h.digest()


_LABELS = {name: name.encode() + b"\0" for name in KEYED}
"""Each keyed name as it opens its part of a card's key."""
_CODE: bytes | None = None


class CardFile:
    """The cards database of one site, opened once per process (see the module
    docstring); every method is a no-op after an SQLite error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._opened: tuple[int, int, int] = (0, 0, 0)  # pid, device, inode
        self._lock = threading.Lock()
        self._pruned = -math.inf
        self.digests: dict[str, dict[int, tuple[Comment, bytes]]] = {}
        """Post -> id(comment) -> (comment, its hash) for each comment its page printed
        last (``PostCards.node_hash``): a long-running process, whose comment cache keeps
        unchanged comments as the same objects, hashes only new ones.  An entry holds its
        comment, so its id cannot be another object's while it is there."""

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection; opened again in a forked child, and when the file was
        deleted or replaced (a cache folder removed under a running daemon)."""
        try:
            st = os.stat(self.path)
            now = (os.getpid(), st.st_dev, st.st_ino)
        except OSError:
            now = (os.getpid(), 0, 0)
        if self._con is not None and self._opened == now:
            return self._con
        if self._con is not None and self._opened[0] == now[0]:
            self._con.close()
        self._con = None
        try:
            con = open_wal(self.path, timeout=10, check_same_thread=False)
            # A page reads its post's rows once: the system's file cache keeps them, and
            # SQLite's own (2 MB by default) would be a second copy in the daemon.
            con.execute("PRAGMA cache_size=-256")
            con.execute(
                "CREATE TABLE IF NOT EXISTS cards (post TEXT NOT NULL, key BLOB NOT NULL,"
                " html TEXT NOT NULL, PRIMARY KEY (post, key)) WITHOUT ROWID"
            )
            st = os.stat(self.path)
        except (OSError, sqlite3.Error):
            return None
        self._con, self._opened = con, (os.getpid(), st.st_dev, st.st_ino)
        return con

    def prune(self, keep: Collection[str]) -> None:
        """Drop the cards of posts with no comment now (a post deleted, its comments
        removed), at most every ``PRUNE_EVERY`` seconds of a long-running process."""
        now = time.monotonic()
        if now - self._pruned < PRUNE_EVERY or not self.path.exists():
            return
        self._pruned = now
        with self._lock:
            con = self._connection()
            if con is None:
                return
            try:
                posts = [post for (post,) in con.execute("SELECT DISTINCT post FROM cards")]
                # An older comment page's rows are "<slug>#<n>" (``Renderer.comments``).
                gone = [(post,) for post in posts if post.partition("#")[0] not in keep]
                if gone:
                    with con:
                        con.executemany("DELETE FROM cards WHERE post = ?", gone)
            except sqlite3.Error:
                return
        for (post,) in gone:
            self.digests.pop(post, None)

    def read(self, post: str) -> dict[bytes, str]:
        with self._lock:
            con = self._connection()
            if con is None:
                return {}
            try:
                rows = con.execute("SELECT key, html FROM cards WHERE post = ?", (post,))
                return dict(rows.fetchall())  # a BLOB comes back as bytes
            except sqlite3.Error:
                return {}

    def lookup(self, post: str, key: bytes) -> str | None:
        """One card of ``post``'s rows, or None."""
        with self._lock:
            con = self._connection()
            if con is None:
                return None
            try:
                row = con.execute(
                    "SELECT html FROM cards WHERE post = ? AND key = ?", (post, key)
                ).fetchone()
            except sqlite3.Error:
                return None
        return None if row is None else str(row[0])

    def write(self, post: str, new: dict[bytes, str], stale: list[bytes]) -> None:
        with self._lock:
            con = self._connection()
            if con is None:
                return
            try:
                with con:
                    con.executemany(
                        "DELETE FROM cards WHERE post = ? AND key = ?", [(post, k) for k in stale]
                    )
                    con.executemany(
                        "INSERT OR REPLACE INTO cards VALUES (?, ?, ?)",
                        [(post, k, h) for k, h in new.items()],
                    )
            except sqlite3.Error:
                return  # a card not kept is rendered again next time


_FILES: dict[Path, CardFile] = {}
_FILES_LOCK = threading.Lock()


def card_file(cache_dir: Path) -> CardFile:
    path = cache_dir / FILE
    with _FILES_LOCK:
        found = _FILES.get(path)
        if found is None:
            found = _FILES[path] = CardFile(path)
        return found


class Cards:
    """What one ``Renderer`` knows about cards: for each card template, the variables its
    key holds (None: it cannot be kept) and the part of its keys that is the same for all."""

    def __init__(
        self,
        env: jinja2.Environment,
        file: CardFile,
        template_digest: Callable[[str], str],
        variables_read: Callable[[str], frozenset[str] | None],
        site_vars: str,
        code: tuple[str, ...],
    ) -> None:
        """``code``: the files of the filters a card calls (part of every key);
        ``variables_read``: what a template and those it uses read
        (``Renderer.variables_read``)."""
        global _CODE
        if _CODE is None:
            _CODE = _code_digest(code)
        self.env, self.file = env, file
        self.keyed: dict[str, tuple[str, ...] | None] = {}
        self.base: dict[str, bytes] = {}
        for template, _ in CALLS.values():
            self.keyed[template] = _keyed(variables_read(template))
            h = hashlib.sha256(_CODE)
            h.update(f"{template}\0{template_digest(template)}\0{site_vars}".encode())
            self.base[template] = h.digest()


def _keyed(read: frozenset[str] | None) -> tuple[str, ...] | None:
    """The context variables a card's key needs, given what its template reads, or None
    when cards cannot be kept."""
    if read is None or read - KEYED - _HELD:
        return None
    return tuple(sorted(read & KEYED))


class PostCards:
    """The cards of one post page while it renders: the ``CALLS`` for its context."""

    def __init__(self, cards: Callable[[], Cards], slug: str, moved_from: str = "") -> None:
        """``cards``: made at the first card (a page without comments prints none).
        ``slug``: the page's rows.  ``moved_from``: rows where a card missing from them
        may be, one lookup each: an older comment page's cards were rendered on the
        post's page while it was the newest."""
        self._cards, self.slug, self.moved_from = cards, slug, moved_from
        self.old: dict[bytes, str] | None = None  # read at the first card
        self.new: dict[bytes, str] = {}
        self.used: set[bytes] = set()
        self._known: dict[int, tuple[Comment, bytes]] | None = None
        self.hashed: dict[int, tuple[Comment, bytes]] = {}
        self.nodes: dict[int, bytes] = {}  # id(node) -> hash, for the nodes of this render

    @property
    def cards(self) -> Cards:
        return self._cards()

    @property
    def known(self) -> dict[int, tuple[Comment, bytes]]:
        if self._known is None:
            self._known = self.cards.file.digests.get(self.slug, {})
        return self._known

    def functions(self) -> dict[str, Callable[..., Markup]]:
        """``comment_html(node)`` and ``reaction_html(r, kind)`` as templates call them."""

        def function(template: str, names: tuple[str, ...]) -> Callable[..., Markup]:
            @jinja2.pass_context
            def call(context: jinja2.runtime.Context, *args: Any) -> Markup:
                if len(args) != len(names):
                    raise TypeError(f"{template} cards take {len(names)} argument(s)")
                return self.card(context, template, dict(zip(names, args, strict=True)))

            return call

        return {name: function(*spec) for name, spec in CALLS.items()}

    def card(
        self, context: jinja2.runtime.Context, template: str, values: dict[str, Any]
    ) -> Markup:
        cards = self.cards
        keyed = cards.keyed[template]
        if keyed is None:
            return self._render(context, template, values)
        h = hashlib.sha256(cards.base[template])
        for name in keyed:
            value = values[name] if name in values else context.resolve_or_missing(name)
            h.update(_LABELS[name])  # ``keyed`` is within ``KEYED`` (``_keyed``)
            h.update(self._hash(value) + b"\0")
        key = h.digest()
        self.used.add(key)
        if self.old is None:
            self.old = cards.file.read(self.slug)
        html = self.old.get(key)
        if html is None:
            html = self.new.get(key)
        if html is None and self.moved_from:
            html = cards.file.lookup(self.moved_from, key)
            if html is not None:
                self.new[key] = html
        if html is None:
            html = self.new[key] = str(self._render(context, template, values))
        return Markup(html)  # noqa: S704 - the output of the autoescaping card template

    def _hash(self, value: Any) -> bytes:
        """What ``repr(value)`` shows, hashed; a comment's hash is remembered by object."""
        if isinstance(value, Thread):
            return self.node_hash(value)
        if isinstance(value, Comment):
            return self.comment_hash(value)
        if isinstance(value, str):
            return value.encode()
        return repr(value).encode()

    def comment_hash(self, comment: Comment) -> bytes:
        entry = self.known.get(id(comment))
        if entry is None or entry[0] is not comment:
            entry = (comment, hashlib.sha256(repr(comment).encode()).digest())
        self.hashed[id(comment)] = entry
        return entry[1]

    def node_hash(self, node: Thread) -> bytes:
        """A hash of everything ``repr(node)`` shows (the comment and, in order, the
        nested threads).  A reply without nested replies (most of them) is its comment's
        hash, with no hashing of its own; any other node hashes its comment's hash and
        its children's, 32 bytes each, so the two kinds cannot give the same bytes short
        of a SHA-256 collision."""
        if not node.children:
            return self.comment_hash(node.comment)
        done = self.nodes.get(id(node))
        if done is not None:
            return done
        h = hashlib.sha256(self.comment_hash(node.comment))
        for child in node.children:
            h.update(self.node_hash(child))
        done = self.nodes[id(node)] = h.digest()
        return done

    def _render(
        self, context: jinja2.runtime.Context, template: str, values: dict[str, Any]
    ) -> Markup:
        """The card as an ``include`` of ``template`` would print it."""
        tpl = self.cards.env.get_template(template)
        ctx = tpl.new_context({**context.get_all(), **values})
        return Markup("".join(tpl.root_render_func(ctx)))  # noqa: S704

    def save(self) -> None:
        """Write the cards rendered; drop unused rows once they outnumber the used."""
        if self.old is None:  # no card printed
            return
        stale: list[bytes] = []
        unused = len(self.old) - len(self.used & self.old.keys())
        if unused > len(self.used) + 64:
            stale = [k for k in self.old if k not in self.used]
        if self.new or stale:
            self.cards.file.write(self.slug, self.new, stale)
        self.cards.file.digests[self.slug] = self.hashed
