"""How long the inbox keeps what it received, and the maintenance step that applies it.

The inbox table is a queue, not an archive.  Rules (tests in
tests/security/test_inbox_retention.py):

* Activities of a type nothing handles (``handlers.PROCESSED_TYPES``) are answered 202 and
  never stored.
* A processed activity keeps no body: the processor drops it when the row is ``done``.
  A ``failed`` row keeps its body ``FAILED_BODY_SECONDS`` (7 days) for the owner to look at.
* Ids (what deduplication needs) are kept ``DEDUPE_SECONDS`` (30 days), then the row goes.
* Cached actors and keys not fetched again for ``STALE_ACTOR_SECONDS`` (30 days) are
  dropped unless the actor follows the blog (they are fetched again when needed).

``prune`` applies these (the processor runs it at most once an hour); ``maintenance`` also
gives the space back to the file system (``VACUUM``) and reports the sizes, for a CLI or
``doctor`` hook.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from bridge.db import Database

FAILED_BODY_SECONDS = 7 * 24 * 3600
DEDUPE_SECONDS = 30 * 24 * 3600
STALE_ACTOR_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Pruned:
    """What one ``prune`` removed."""

    bodies: int
    rows: int
    actors: int


@dataclass(frozen=True)
class Maintenance:
    """``prune`` plus ``VACUUM``: what was removed and the state file's size before/after."""

    pruned: Pruned
    bytes_before: int
    bytes_after: int

    def summary(self) -> str:
        """One line for the owner, e.g. ``state: 12.0 MiB -> 1.5 MiB (...)``."""
        p = self.pruned
        return (
            f"state: {_mib(self.bytes_before)} -> {_mib(self.bytes_after)} "
            f"({p.bodies} bodies and {p.rows} inbox rows pruned, {p.actors} cached actors dropped)"
        )


def _mib(size: int) -> str:
    return f"{size / 1_048_576:.1f} MiB"


def prune(db: Database, now: float) -> Pruned:
    """Apply the retention rules (module docstring) in one transaction."""
    with db.tx() as con:
        bodies = con.execute(
            "UPDATE inbox SET body = '' WHERE body != '' AND ("
            " status = 'done' OR (status = 'failed' AND received < ?))",
            (now - FAILED_BODY_SECONDS,),
        ).rowcount
        rows = con.execute(
            "DELETE FROM inbox WHERE status != 'new' AND received < ?", (now - DEDUPE_SECONDS,)
        ).rowcount
        stale = now - STALE_ACTOR_SECONDS
        actors = con.execute(
            "DELETE FROM actors WHERE fetched < ? AND id NOT IN (SELECT actor FROM followers)",
            (stale,),
        ).rowcount
        con.execute(
            "DELETE FROM keys WHERE fetched < ? AND owner NOT IN (SELECT actor FROM followers)",
            (stale,),
        )
    return Pruned(bodies, rows, actors)


def state_size(db: Database) -> int:
    """Bytes of the SQLite file and its write-ahead log."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):  # no log file right after a checkpoint
            total += os.path.getsize(str(db.path) + suffix)
    return total


def maintenance(db: Database, now: float) -> Maintenance:
    """Prune, then ``VACUUM`` (and checkpoint the log) so the file shrinks; report sizes."""
    before = state_size(db)
    pruned = prune(db, now)
    db.con.execute("VACUUM")
    db.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Maintenance(pruned, before, state_size(db))
