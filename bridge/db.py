"""The daemon's state: one SQLite file (``.indiebridge/state.sqlite3``) in WAL mode.

This module owns the connection, the schema and its migrations; the modules that own a
concept (followers, delivery, inbox, outbox, webmentions) own their queries.  WAL lets
the CLI read and write while the daemon runs; ``busy_timeout`` makes a writer wait for a
concurrent one instead of failing.  Each write is one transaction, so a kill -9 leaves
either the old or the new state, never half of one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- People following the blog. state: pending | accepted
CREATE TABLE IF NOT EXISTS followers (
    actor TEXT PRIMARY KEY,
    inbox TEXT NOT NULL,
    shared_inbox TEXT,
    follow_id TEXT NOT NULL,
    handle TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'accepted',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
-- Blocked domains (example.com) and actors (https://example.com/users/x).
CREATE TABLE IF NOT EXISTS blocks (
    pattern TEXT PRIMARY KEY,
    created REAL NOT NULL
);
-- Verified incoming activities, processed by the worker. status: new | done | failed
CREATE TABLE IF NOT EXISTS inbox (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    body TEXT NOT NULL,
    received REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    tries INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    forwarded INTEGER NOT NULL DEFAULT 0,  -- relayed by a third server: refetch from origin
    signer TEXT NOT NULL DEFAULT '',  -- the verified actor id whose key signed the request
    next_try REAL NOT NULL DEFAULT 0  -- a retried row is not due before this moment
);
CREATE INDEX IF NOT EXISTS inbox_status ON inbox(status, received);
-- Unprocessed rows readers see, started first; unprocessed rows by actor (inbox/order.py).
CREATE INDEX IF NOT EXISTS inbox_first ON inbox(received)
    WHERE status = 'new' AND type IN ('Create', 'Delete', 'Update');
CREATE INDEX IF NOT EXISTS inbox_pending_actor ON inbox(actor, received) WHERE status = 'new';
-- Activities we send; the body is stored once, deliveries point at it.
CREATE TABLE IF NOT EXISTS outgoing (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL
);
-- One row per (activity, inbox). state: queued | sending | done | failed | gone
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    activity_id TEXT NOT NULL REFERENCES outgoing(id),
    inbox TEXT NOT NULL,
    host TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    tries INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '',  -- the delivery process that holds a 'sending' row
    UNIQUE (activity_id, inbox)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_try);
-- What was federated for each post, to diff on the next publish.
CREATE TABLE IF NOT EXISTS published (
    slug TEXT PRIMARY KEY,
    object_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    as_type TEXT NOT NULL,
    links TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'live',
    federated INTEGER NOT NULL DEFAULT 1,
    first_published REAL NOT NULL,
    updated REAL NOT NULL
);
-- Every object id federated for a post (a post deleted and written again gets a new one)
-- or the actor (slug ''): the last activity sent about it, which the next activity id
-- chains on, the last ``updated`` sent, and when it was deleted (it then answers 410).
CREATE TABLE IF NOT EXISTS federated_objects (
    object_id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    as_type TEXT NOT NULL,
    last_activity TEXT NOT NULL DEFAULT '',
    last_updated TEXT NOT NULL DEFAULT '',
    deleted REAL
);
-- Remote actors and keys, cached.
CREATE TABLE IF NOT EXISTS actors (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    fetched REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    pem TEXT NOT NULL,
    fetched REAL NOT NULL
);
-- Webmentions received, verified asynchronously. status: new | done | failed
CREATE TABLE IF NOT EXISTS webmentions_in (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    received REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    tries INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    UNIQUE (source, target, status)
);
-- Webmentions we sent.
CREATE TABLE IF NOT EXISTS webmentions_out (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    endpoint TEXT,
    status INTEGER,
    location TEXT,
    error TEXT NOT NULL DEFAULT '',
    sent REAL NOT NULL,
    PRIMARY KEY (source, target)
);
-- Comments the owner rejected: they must not come back when redelivered.
CREATE TABLE IF NOT EXISTS comments_rejected (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL
);
-- Mentions of the actor that are not replies to a post: shown to the owner only.
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    url TEXT NOT NULL,
    content TEXT NOT NULL,
    received REAL NOT NULL
);
-- Handles mentioned in posts, resolved with WebFinger at publish time (site.mentions).
CREATE TABLE IF NOT EXISTS mention_cache (
    handle TEXT PRIMARY KEY,
    actor_id TEXT NOT NULL,
    profile_url TEXT NOT NULL,
    inbox TEXT NOT NULL,
    fetched REAL NOT NULL,
    expires REAL NOT NULL
);
-- Inboxes of accounts a post mentioned: its Update and Delete reach them too.
CREATE TABLE IF NOT EXISTS mention_recipients (
    slug TEXT NOT NULL,
    inbox TEXT NOT NULL,
    PRIMARY KEY (slug, inbox)
);
-- Posts quoted with quote_of, fetched at publish time (federation.quoting): the card.
CREATE TABLE IF NOT EXISTS quote_cache (
    url TEXT PRIMARY KEY,
    object_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    card TEXT NOT NULL,
    fetched REAL NOT NULL,
    expires REAL NOT NULL
);
-- Our QuoteRequests (FEP-044f), one per quoting post. state: pending|accepted|rejected
CREATE TABLE IF NOT EXISTS quotes_out (
    slug TEXT PRIMARY KEY,
    quoted TEXT NOT NULL,
    author_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    state TEXT NOT NULL,
    stamp TEXT NOT NULL DEFAULT '',
    sent REAL NOT NULL,
    answered REAL
);
"""


def read_only(path: Path, read: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """``read`` on the state database at ``path`` opened read-only (the build's view, which
    never creates or migrates it); ``empty`` when there is none or it cannot be read."""
    if not path.exists():
        return empty
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return read(con)
        finally:
            con.close()
    except sqlite3.Error:
        return empty


class Database:
    """A thread-safe SQLite handle.  One connection per thread, WAL, busy timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.con.executescript(SCHEMA)  # executescript manages its own transaction
        _add_columns(self)
        with self.tx() as con:
            con.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @property
    def con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("PRAGMA foreign_keys=ON")
            self._local.con = con
        return con

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue instead of deadlocking)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return self.con.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.con.execute(sql, params).fetchone()
        return row

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as con:
            con.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


ADDED_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    # (table, column, declaration, SQL run once after adding it to an older database)
    # published.file_stamp: the object file a digest was taken from (size, mtime, inode)
    ("published", "file_stamp", "TEXT NOT NULL DEFAULT ''", "SELECT 1"),
    (
        "inbox",
        "forwarded",
        "INTEGER NOT NULL DEFAULT 0",
        "UPDATE inbox SET forwarded = 1, error = '' WHERE error = 'forwarded'",
    ),
    ("inbox", "signer", "TEXT NOT NULL DEFAULT ''", "SELECT 1"),
    ("inbox", "next_try", "REAL NOT NULL DEFAULT 0", "SELECT 1"),
    ("deliveries", "claimed_by", "TEXT NOT NULL DEFAULT ''", "SELECT 1"),
)
"""Columns added after a table was first released; older databases get them on open."""


def _add_columns(db: Database) -> None:
    with db.tx() as con:
        for table, column, declaration, backfill in ADDED_COLUMNS:
            present = {row["name"] for row in con.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                con.execute(backfill)


def now() -> float:
    return time.time()
