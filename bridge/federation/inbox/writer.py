"""Group commit for the inbox table: many verified activities, one SQLite transaction.

Each request awaits ``InboxWriter.store(row)``.  The first row of a batch waits
``window`` seconds (1 ms) for others; then the batch (at most ``max_batch`` rows) is
inserted in one transaction in the writer's own thread (one per process, so one SQLite
connection; a plain executor hand-off costs a third of anyio's worker-thread machinery),
so the event loop keeps parsing and verifying meanwhile, and rows arriving during that
insert form the next batch.  Every
``store`` returns only after the transaction holding its row has committed, so a 202 is
never sent for a row that is not in the database.  A failed transaction fails every
request of its batch (each answers 500 and the sender retries); none is half-stored.

The writer's connection waits for the write lock in steps of ``LOCK_POLL`` (0.5 ms)
instead of SQLite's busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between
tries: a lock another process held for 3 ms cost the batch 8 ms, and one held for 30 ms
up to 100 ms, every request of the batch waiting.  The connection also never runs a WAL
checkpoint (``wal_autocheckpoint=0``): a commit that crossed the checkpoint's threshold
copied the log into the database and synced it while the batch's requests waited.  The
background process and the delivery processes, whose commits no request waits for,
checkpoint as before (every SQLite connection does past 1,000 pages of log).

The insert is ``INSERT OR IGNORE`` by activity id: a redelivery is recognised (``store``
returns False) and not stored twice, whether the copies land in one batch or in two, and
whichever HTTP worker received them (the table's primary key decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from bridge.db import Database

Row = tuple[str, str, str, str, float, bool, str]
"""(id, type, actor, body, received, forwarded, signer)"""

WINDOW = 0.001
MAX_BATCH = 256
LOCK_POLL = 0.0005
"""Seconds between two tries for the write lock."""
LOCK_TIMEOUT = 30.0
"""Seconds a batch waits for the write lock before it fails (as ``busy_timeout``)."""

_INSERT = (
    "INSERT OR IGNORE INTO inbox(id, type, actor, body, received, status, forwarded, signer) "
    "VALUES (?, ?, ?, ?, ?, 'new', ?, ?)"
)


def insert_rows(db: Database, rows: list[Row]) -> list[bool]:
    """Insert ``rows`` in one transaction; for each, True when it was new."""
    with db.tx() as con:
        return [con.execute(_INSERT, row).rowcount > 0 for row in rows]


def prepare_connection(db: Database) -> None:
    """The writer thread's connection: no busy handler, no checkpoint (module docstring)."""
    db.con.execute("PRAGMA busy_timeout=0")
    db.con.execute("PRAGMA wal_autocheckpoint=0")


def insert_polling(db: Database, rows: list[Row]) -> list[bool]:
    """``insert_rows``, waiting for the write lock in ``LOCK_POLL`` steps."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            return insert_rows(db, rows)
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            if db.con.in_transaction:  # a busy COMMIT (not seen in WAL): start over
                db.con.execute("ROLLBACK")
            time.sleep(LOCK_POLL)


class InboxWriter:
    """Batches the inserts of one process's event loop (see the module docstring)."""

    def __init__(self, db: Database, *, window: float = WINDOW, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.window = window
        self.max_batch = max_batch
        self._waiting: list[tuple[Row, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None  # started by the first batch
        self.batches = 0
        """Transactions committed so far (the tests and the benchmark read it)."""

    async def close(self) -> None:
        """Let the batch in flight commit, then end the writer's thread (the daemon's
        shutdown; a later ``store`` starts a new one)."""
        if self._flusher is not None and not self._flusher.done():
            with contextlib.suppress(Exception):
                await self._flusher
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.shutdown, wait=True)

    async def store(self, row: Row) -> bool:
        """Insert ``row`` with the others arriving now; True when it is new."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((row, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(
                1,
                thread_name_prefix="inbox-writer",
                initializer=prepare_connection,
                initargs=(self.db,),
            )
        while self._waiting:
            await asyncio.sleep(self.window)
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                # The flusher is its own task: a request that goes away cancels nothing,
                # and the rows commit (or fail) in the writer's thread whatever happens.
                new = await loop.run_in_executor(
                    self._thread, insert_polling, self.db, [row for row, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - given to every request of the batch
                for _, done in batch:
                    with contextlib.suppress(asyncio.InvalidStateError):
                        done.set_exception(exc)
                continue
            self.batches += 1
            for (_, done), is_new in zip(batch, new, strict=True):
                with contextlib.suppress(asyncio.InvalidStateError):
                    done.set_result(is_new)
