"""Which stored activities the processor starts first: what readers see, in causal order.

Under a flood (a post gone viral: thousands of likes, boosts and follows a minute), a reply
that waits behind every like received before it is shown minutes late.  So each round
starts, in this order:

1. **Rows readers see** (``FIRST_TYPES``: Create, Update and Delete, the activities that
   add, change or remove a reply or mention), oldest first;
2. then every other due row, oldest first, as before.

Reordering never applies an Undo or a Delete before what it undoes (``held_back``):

* an **Undo** waits while the activity it names (by id, or the embedded activity's id)
  has a row that arrived before the Undo and is not processed yet (due, running, or waiting
  for a retry): an Undo(Like) never runs before its Like, whichever order rows start in;
* a **Delete** waits while any row from the same actor that arrived before it is not
  processed yet: the Delete of a reply never runs before that reply's Create, nor the
  Delete of an account before its Follow.

The rows of that actor received after a held Undo or Delete wait with it (a Like sent
again after its Undo must not run before the Undo).  "Before" and "after" are the order of
(``received``, ``id``), a strict order, so two rows can never hold each other back, and
a row that an Undo or a Delete waits for is never itself held by it.  A held row stays
``new`` and is looked at again in the next round; since a row that keeps failing ends
``failed`` after ``max_tries`` (about 8 minutes of backoff), nothing waits longer.
Within a round, an Undo or a Delete also runs only after the rows of its actor started
before it, and the actor's rows started after it wait for it (``InboxProcessor``).

The first query reads the partial index ``inbox_first`` (``bridge.db``): only unprocessed
rows of ``FIRST_TYPES`` are in it, so finding the few replies in a backlog of 30,000 likes
costs microseconds instead of a scan of the backlog.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

from bridge.db import Database
from bridge.federation.actors import first_id

__all__ = ["BARRIER_TYPES", "FIRST_TYPES", "due_rows", "held_back"]

FIRST_TYPES = ("Create", "Delete", "Update")
"""Activity types started ahead of the others (the order of ``bridge.db``'s index)."""

BARRIER_TYPES = frozenset({"Undo", "Delete"})
"""Types that may undo an earlier row of their actor: they never overtake one."""

_FIRST = (
    "SELECT id, type, actor, body, tries, forwarded, received FROM inbox INDEXED BY inbox_first "
    "WHERE status = 'new' AND type IN ('Create', 'Delete', 'Update') AND next_try <= ? "
    "ORDER BY received LIMIT ?"
)
_REST = (
    "SELECT id, type, actor, body, tries, forwarded, received FROM inbox "
    "WHERE status = 'new' AND next_try <= ? "
    "ORDER BY received LIMIT ?"
)
_EARLIER_FROM_ACTOR = (
    "SELECT 1 FROM inbox WHERE status = 'new' AND actor = ? "
    "AND (received < ? OR (received = ? AND id < ?)) LIMIT 1"
)
_EARLIER_ROW = (
    "SELECT 1 FROM inbox WHERE id = ? AND status = 'new' "
    "AND (received < ? OR (received = ? AND id < ?))"
)


def due_rows(db: Database, now: float, limit: int, busy: Collection[str]) -> list[sqlite3.Row]:
    """Up to ``limit`` due rows not in ``busy``, in the order to start them (see above)."""
    first = db.query(_FIRST, (now, limit + len(busy)))
    rest = db.query(_REST, (now, limit + len(busy)))
    chosen: list[sqlite3.Row] = []
    seen: set[str] = set()
    held: dict[str, tuple[float, str]] = {}  # actor -> its earliest held Undo or Delete
    for row in [*first, *rest]:
        if len(chosen) >= limit:
            break
        if row["id"] in seen or row["id"] in busy:
            continue
        seen.add(row["id"])
        place = (row["received"], row["id"])
        barrier = held.get(row["actor"])
        if barrier is not None and place > barrier:
            continue  # after a held Undo or Delete of its actor: a Like again waits for it
        if held_back(db, row):
            held[row["actor"]] = min(place, barrier or place)
        else:
            chosen.append(row)
    return chosen


def held_back(db: Database, row: sqlite3.Row) -> bool:
    """Whether ``row`` (an Undo or a Delete) must wait for an earlier row it may undo."""
    kind = row["type"]
    if kind not in BARRIER_TYPES:
        return False
    order = (row["received"], row["received"], row["id"])
    if kind == "Delete":
        return db.one(_EARLIER_FROM_ACTOR, (row["actor"], *order)) is not None
    try:
        undone = first_id(json.loads(row["body"]).get("object"))
    except (ValueError, AttributeError):
        return False  # the processor fails the row on its shape
    if not undone or undone == row["id"]:
        return False
    return db.one(_EARLIER_ROW, (undone, *order)) is not None
