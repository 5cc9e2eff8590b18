"""Opening a cache database in WAL mode (``open_wal``), and closing one without the
checkpoint SQLite runs when its last connection closes.

The parse cache and the Markdown cache are SQLite files in WAL mode.  When the last
connection to such a file closes, SQLite checkpoints: it syncs the log, copies it into
the database, syncs that, and deletes the log, which the next command creates (and
syncs, with its folder) again.  A one-post ``indiebridge build`` paid that for both
caches: 7 ``fdatasync`` calls, 40-60 ms of its wall time on this machine's disk.

``close_keeping_log`` closes a connection while a read-only connection to the same file
is open: SQLite then leaves the log in place (another connection might still read it),
and a read-only connection never checkpoints.  The log is checkpointed as usual when a
commit finds it over 1,000 pages (``wal_autocheckpoint``), and a log over ``LOG_LIMIT``
(a first build writes every row in one transaction) is closed the usual way.  What
this gives up is what ``synchronous=NORMAL`` already allows: after a power loss the last
commits may be missing (never a damaged file), and a cache missing rows only costs
speed.  ``tests/site/test_cache_log.py`` checks both.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

LOG_LIMIT = 4 << 20  # bytes: a log larger than this closes as SQLite closes it


def close_keeping_log(con: sqlite3.Connection, path: Path) -> None:
    """Close ``con`` (a connection to the WAL database at ``path``) without the
    checkpoint and deletion of the log; a plain close when that cannot be arranged."""
    try:
        size = os.path.getsize(f"{path}-wal")
    except OSError:
        size = 0
    if size > LOG_LIMIT:  # a large log (a first build's) is checkpointed and removed
        con.close()
        return
    reader: sqlite3.Connection | None = None
    with contextlib.suppress(sqlite3.Error, OSError):
        reader = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        reader.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # its shared lock
    try:
        con.close()
    finally:
        if reader is not None:
            reader.close()


def open_wal(path: Path, **connect: Any) -> sqlite3.Connection:
    """A connection to the cache database at ``path`` (its folder made when missing), in WAL
    mode with ``synchronous=NORMAL``: a cache may lose its last commits to a power loss,
    never its consistency.  ``connect``: ``sqlite3.connect``'s options.

    Raises:
        OSError: the folder cannot be made.
        sqlite3.Error: the file is not a database SQLite can use (the connection is closed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con: sqlite3.Connection = sqlite3.connect(path, **connect)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        con.close()
        raise
    return con
