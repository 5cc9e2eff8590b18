"""Followers and blocks: the ``followers`` and ``blocks`` tables.

A follower row is written when a Follow is processed (``accepted``, or ``pending`` when
``manually_approves_followers`` is set) and removed by Undo(Follow), by an actor Delete,
by a 410 from their inbox, or by the owner.  Blocks name a domain (``example.com``, which
covers its subdomains) or an actor URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge.db import Database, now


@dataclass(frozen=True)
class Follower:
    actor: str
    inbox: str
    shared_inbox: str | None
    follow_id: str
    handle: str
    state: str
    created: float


def upsert(
    db: Database,
    *,
    actor: str,
    inbox: str,
    shared_inbox: str | None,
    follow_id: str,
    handle: str,
    state: str,
) -> bool:
    """Record a follower; returns True when the row is new or changed state."""
    with db.tx() as con:
        row = con.execute("SELECT state FROM followers WHERE actor = ?", (actor,)).fetchone()
        if row and row["state"] == "accepted" and state == "pending":
            state = "accepted"  # a re-sent Follow never demotes an accepted follower
        con.execute(
            "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, handle, state, "
            "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(actor) DO UPDATE SET inbox = excluded.inbox, "
            "shared_inbox = excluded.shared_inbox, follow_id = excluded.follow_id, "
            "handle = excluded.handle, state = excluded.state, updated = excluded.updated",
            (actor, inbox, shared_inbox, follow_id, handle, state, now(), now()),
        )
    return row is None or row["state"] != state


def remove(db: Database, actor: str) -> bool:
    with db.tx() as con:
        cur = con.execute("DELETE FROM followers WHERE actor = ?", (actor,))
    return cur.rowcount > 0


def remove_by_inbox(db: Database, inbox: str) -> int:
    """A 410 from an inbox: its account (or, for a shared inbox, its server) is gone."""
    with db.tx() as con:
        cur = con.execute(
            "DELETE FROM followers WHERE inbox = ? OR shared_inbox = ?", (inbox, inbox)
        )
    return cur.rowcount


def get(db: Database, actor: str) -> Follower | None:
    row = db.one("SELECT * FROM followers WHERE actor = ?", (actor,))
    return _row(row) if row else None


def find(db: Database, account: str) -> Follower | None:
    """By actor URL or by handle (``@user@host`` or ``user@host``)."""
    handle = "@" + account.lstrip("@")
    row = db.one(
        "SELECT * FROM followers WHERE actor = ? OR lower(handle) = lower(?)", (account, handle)
    )
    return _row(row) if row else None


def all_followers(db: Database, state: str | None = None) -> list[Follower]:
    if state:
        rows = db.query("SELECT * FROM followers WHERE state = ? ORDER BY created", (state,))
    else:
        rows = db.query("SELECT * FROM followers ORDER BY created")
    return [_row(r) for r in rows]


def count(db: Database) -> int:
    row = db.one("SELECT count(*) AS n FROM followers WHERE state = 'accepted'")
    return int(row["n"]) if row else 0


def set_state(db: Database, actor: str, state: str) -> None:
    with db.tx() as con:
        con.execute(
            "UPDATE followers SET state = ?, updated = ? WHERE actor = ?", (state, now(), actor)
        )


def _row(row: object) -> Follower:
    r = row  # sqlite3.Row
    return Follower(
        actor=r["actor"],  # type: ignore[index]
        inbox=r["inbox"],  # type: ignore[index]
        shared_inbox=r["shared_inbox"],  # type: ignore[index]
        follow_id=r["follow_id"],  # type: ignore[index]
        handle=r["handle"],  # type: ignore[index]
        state=r["state"],  # type: ignore[index]
        created=r["created"],  # type: ignore[index]
    )


# ---- blocks -------------------------------------------------------------------------


def normalise_block(pattern: str) -> str:
    """``@user@host`` stays a handle; URLs stay URLs; domains are lowercased.

    A trailing dot (``evil.example.``, the same name in DNS) is dropped from domains and
    handles, so a block cannot be sidestepped by spelling the host with one.
    """
    pattern = pattern.strip()
    if pattern.startswith(("http://", "https://")):
        return pattern
    if pattern.count("@") >= 1 and not pattern.startswith("@"):
        pattern = "@" + pattern
    return pattern.lower().rstrip(".")


def block(db: Database, pattern: str) -> str:
    pattern = normalise_block(pattern)
    with db.tx() as con:
        con.execute(
            "INSERT OR IGNORE INTO blocks(pattern, created) VALUES (?, ?)", (pattern, now())
        )
    return pattern


def unblock(db: Database, pattern: str) -> bool:
    with db.tx() as con:
        cur = con.execute("DELETE FROM blocks WHERE pattern = ?", (normalise_block(pattern),))
    return cur.rowcount > 0


def blocks(db: Database) -> list[str]:
    return [r["pattern"] for r in db.query("SELECT pattern FROM blocks ORDER BY pattern")]


def is_blocked(db: Database, actor: str, handle: str = "") -> bool:
    """True when the actor, its handle or its domain (or a parent domain) is blocked."""
    patterns = set(blocks(db))
    if not patterns:
        return False
    if actor in patterns or (handle and normalise_block(handle) in patterns):
        return True
    try:
        host = (urlsplit(actor).hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    parts = host.split(".")
    return any(".".join(parts[i:]) in patterns for i in range(len(parts)))
