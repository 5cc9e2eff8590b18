"""The delivery queue in SQLite: the ``outgoing`` and ``deliveries`` tables (see ``bridge.db``).

``outgoing`` holds each activity's JSON once, keyed by its id; ``deliveries`` holds one row
per (activity, inbox).  Every function here is one transaction, so a crash leaves either the
old or the new state, except ``enqueue``, which adds a large fan-out's rows in chunks and
can be called again to finish one.  Row states::

    queued --claim--> sending --2xx--> done
      ^                  |----retryable, policy allows another try--> queued (next_try later)
      |                  |----retryable, policy gives up------------> failed
      |                  |----410-----------------------------------> gone (and every queued
      |                  |                                             row for that inbox)
      |                  '----other permanent error----------------> failed
      '---- recover() after a crash, or release() by a worker stopping before it sent ----'

``sending`` means *claimed by a worker*; ``claimed_by`` names the worker (its ``owner``
token, '' for a worker without one).  A process killed with rows in ``sending`` leaves
them there; ``recover()`` (called once at daemon start, when no other worker runs) puts
them all back to ``queued``, and ``recover(owner=...)`` only the rows of one worker that
is known to be dead (the delivery pool calls it when a child process exits).  The
activity id never changes, so a receiver that got the activity just before the crash
deduplicates the second copy.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.db import Database
from bridge.federation.delivery.policy import one_line


@dataclass(frozen=True)
class Job:
    """One claimed delivery row with its activity body."""

    id: int
    activity_id: str
    inbox: str
    host: str
    tries: int
    body: bytes


def inbox_host(inbox: str) -> str | None:
    """The lowercase host of an http(s) inbox URL, or None when the URL is not usable."""
    try:
        url = httpx.URL(inbox)
    except (httpx.InvalidURL, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url.host.lower()


ENQUEUE_CHUNK = 100
"""Delivery rows added per transaction.  A fan-out to 10,000 followers in one transaction
held SQLite's write lock for 0.2-0.5 s on a busy two-core machine, and every inbox POST
waited behind it: in ``benchmarks/load_mixed.py`` the 300 requests over the p99 fell in
four or five 0.1 s windows of that one stall (p99 99.5-316.8 ms in seven runs).  Chunks of
500 rows still held it about 23 ms each (p99 67.8, 76.0 ms); of 100, about 5 ms (p99 19.0,
28.5, 37.9 ms, the slow requests spread over 17-27 windows).  Between chunks the inbox's
writer, polling every 0.5 ms (``bridge.federation.inbox.writer``), takes the lock in the
pause ``ENQUEUE_PAUSE``."""
ENQUEUE_PAUSE = 0.001  # seconds between two chunks: the inbox writer polls every 0.5 ms


def enqueue(
    db: Database, activity: dict[str, Any], inboxes: Iterable[str], *, now: float | None = None
) -> int:
    """Queue ``activity`` for each distinct inbox, ``ENQUEUE_CHUNK`` inboxes a transaction.

    The activity JSON is stored once (``INSERT OR IGNORE`` by its ``id``: a second call with
    the same id keeps the first body) and one ``deliveries`` row is added per inbox not
    queued for it yet, due at ``now``.  An inbox that is not an http(s) URL gets a row in
    state ``failed`` so it shows in ``indiebridge deliveries --failed``.  A crash between
    two chunks leaves the first ones queued (being delivered already); calling again with
    the same activity queues the rest, as rows are unique per activity and inbox (a
    publish that did not finish is run again: ``bridge.federation.outbox``).

    Returns:
        The number of delivery rows added (0 when everything was queued before).
    Raises:
        ValueError: the activity has no string ``id``.
    """
    activity_id = activity.get("id")
    if not isinstance(activity_id, str) or not activity_id:
        raise ValueError("an activity needs a string id to be delivered")
    kind = activity.get("type")
    kind = kind if isinstance(kind, str) else ""
    body = json.dumps(activity, ensure_ascii=False, separators=(",", ":"))
    moment = time.time() if now is None else now
    targets = list(dict.fromkeys(inboxes))
    added = 0
    for start in range(0, max(len(targets), 1), ENQUEUE_CHUNK):  # once with no inbox
        if start:
            time.sleep(ENQUEUE_PAUSE)
        with db.tx() as con:
            if not start:
                con.execute(
                    "INSERT OR IGNORE INTO outgoing(id, type, body, created) VALUES (?, ?, ?, ?)",
                    (activity_id, kind, body, moment),
                )
            for inbox in targets[start : start + ENQUEUE_CHUNK]:
                host = inbox_host(inbox)
                state, error = ("queued", "") if host else ("failed", "invalid inbox URL")
                cur = con.execute(
                    "INSERT OR IGNORE INTO deliveries"
                    "(activity_id, inbox, host, state, next_try, last_error, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (activity_id, inbox, host or "", state, moment, error, moment, moment),
                )
                added += cur.rowcount
    return added


def inboxes_for_followers(db: Database) -> list[str]:
    """Distinct delivery targets of accepted followers: the shared inbox, else the inbox."""
    rows = db.query(
        "SELECT DISTINCT COALESCE(NULLIF(shared_inbox, ''), inbox) AS target FROM followers"
        " WHERE state = 'accepted' AND COALESCE(NULLIF(shared_inbox, ''), inbox) != ''"
        " ORDER BY target"
    )
    return [str(row["target"]) for row in rows]


def list_deliveries(
    db: Database, *, failed_only: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Delivery rows for ``indiebridge deliveries``, most recently updated first.

    Each dict has ``activity_id``, ``type``, ``inbox``, ``state``, ``tries``, ``next_try``,
    ``last_status``, ``last_error`` and ``updated``.  ``failed_only`` keeps state ``failed``.
    """
    rows = db.query(
        "SELECT d.activity_id, o.type, d.inbox, d.state, d.tries, d.next_try, d.last_status,"
        " d.last_error, d.updated FROM deliveries d LEFT JOIN outgoing o ON o.id = d.activity_id"
        " WHERE d.state = 'failed' OR NOT ? ORDER BY d.updated DESC, d.id DESC LIMIT ?",
        (failed_only, limit),
    )
    return [
        {
            "activity_id": row["activity_id"],
            "type": row["type"] or "",
            "inbox": row["inbox"],
            "state": row["state"],
            "tries": row["tries"],
            "next_try": row["next_try"],
            "last_status": row["last_status"],
            "last_error": row["last_error"],
            "updated": row["updated"],
        }
        for row in rows
    ]


def recover(db: Database, now: float, owner: str | None = None) -> int:
    """Put rows a killed worker left in ``sending`` back to ``queued``, due now.

    Without ``owner`` every claimed row is recovered (only safe when no worker runs);
    with it, only the rows that worker claimed.
    """
    sql = (
        "UPDATE deliveries SET state = 'queued', next_try = ?, updated = ?, claimed_by = ''"
        " WHERE state = 'sending'"
    )
    params: tuple[object, ...] = (now, now)
    if owner is not None:
        sql += " AND claimed_by = ?"
        params += (owner,)
    with db.tx() as con:
        cur = con.execute(sql, params)
    return cur.rowcount


def next_due(db: Database) -> float | None:
    """When the earliest queued row falls due (None when nothing is queued)."""
    row = db.one("SELECT MIN(next_try) AS due FROM deliveries WHERE state = 'queued'")
    return None if row is None or row["due"] is None else float(row["due"])


def due_count(db: Database, now: float, limit: int) -> int:
    """How many queued rows are due at ``now``, counting no further than ``limit``."""
    row = db.one(
        "SELECT count(*) AS n FROM (SELECT 1 FROM deliveries"
        " WHERE state = 'queued' AND next_try <= ? LIMIT ?)",
        (now, limit),
    )
    return 0 if row is None else int(row["n"])


def claim(db: Database, room: int, now: float, owner: str = "") -> list[Job]:
    """Mark up to ``room`` due rows ``sending`` by ``owner`` (one transaction) and load
    their bodies."""
    if room <= 0:
        return []
    with db.tx() as con:
        rows = con.execute(
            "SELECT id, activity_id, inbox, host, tries FROM deliveries"
            " WHERE state = 'queued' AND next_try <= ? ORDER BY next_try, id LIMIT ?",
            (now, room),
        ).fetchall()
        if not rows:
            return []
        con.executemany(
            "UPDATE deliveries SET state = 'sending', claimed_by = ?, updated = ? WHERE id = ?",
            [(owner, now, row["id"]) for row in rows],
        )
        bodies: dict[str, bytes] = {}
        for activity_id in {row["activity_id"] for row in rows}:
            found = con.execute("SELECT body FROM outgoing WHERE id = ?", (activity_id,)).fetchone()
            bodies[activity_id] = found["body"].encode("utf-8") if found else b""
    return [
        Job(
            id=row["id"],
            activity_id=row["activity_id"],
            inbox=row["inbox"],
            host=row["host"],
            tries=row["tries"],
            body=bodies[row["activity_id"]],
        )
        for row in rows
    ]


def release(db: Database, job: Job, now: float) -> None:
    """Give a claimed row back without counting an attempt (stop or cancellation)."""
    with contextlib.suppress(sqlite3.Error), db.tx() as con:
        con.execute(
            "UPDATE deliveries SET state = 'queued', updated = ? WHERE id = ? "
            "AND state = 'sending'",
            (now, job.id),
        )


@dataclass(frozen=True)
class Outcome:
    """The row's next state after one attempt (``next_try`` None keeps the old value)."""

    state: str
    status: int | None
    message: str
    next_try: float | None = None


def record(db: Database, job: Job, outcome: Outcome, now: float) -> None:
    """Write one attempt's outcome; a ``gone`` inbox also retires its other queued rows."""
    record_many(db, [(job, outcome, now)])


def record_many(db: Database, items: list[tuple[Job, Outcome, float]]) -> None:
    """``record`` for several attempts, in one transaction."""
    with db.tx() as con:
        for job, outcome, now in items:
            _record(con, job, outcome, now)


def _record(con: sqlite3.Connection, job: Job, outcome: Outcome, now: float) -> None:
    con.execute(
        "UPDATE deliveries SET state = ?, tries = ?, next_try = COALESCE(?, next_try),"
        " last_status = ?, last_error = ?, updated = ? WHERE id = ?",
        (
            outcome.state,
            job.tries + 1,
            outcome.next_try,
            outcome.status,
            outcome.message,
            now,
            job.id,
        ),
    )
    if outcome.state == "gone":
        con.execute(
            "UPDATE deliveries SET state = 'gone', last_status = 410, last_error = ?,"
            " updated = ? WHERE inbox = ? AND state = 'queued'",
            (one_line(f"inbox gone (410 for {job.activity_id})"), now, job.inbox),
        )
