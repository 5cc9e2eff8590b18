"""Moderation done outside the daemon, and how it reaches the live site.

``indiebridge block``, ``comments approve|reject|delete`` and ``followers remove`` run in
their own process, beside a daemon that may be serving the site.  They change the comment
files and the database; what the pages show then has to follow:

* the command bumps a counter in the database (``meta.site_changes``) with
  ``record_change``;
* a running daemon polls the counter (``ChangePoller``, every ``poll_interval``) and rebuilds the
  site when it moved, so the pages are current within a few seconds;
* without a daemon, the command rebuilds the site itself (``settle``).

``block`` is the library side of ``indiebridge block``: it stores the pattern, removes
followers it matches and deletes the comments of blocked authors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.config import SiteConfig
from bridge.daemon.lock import daemon_running
from bridge.db import Database
from bridge.federation import followers
from bridge.federation.context import Context

COUNTER_KEY = "site_changes"


def change_count(db: Database) -> int:
    """How many out-of-process changes were recorded so far."""
    value = db.get_meta(COUNTER_KEY)
    return int(value) if value and value.isdigit() else 0


def record_change(db: Database) -> int:
    """Note that pages must be rebuilt; returns the new count."""
    with db.tx() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (COUNTER_KEY,)).fetchone()
        count = int(row[0]) + 1 if row is not None and str(row[0]).isdigit() else 1
        con.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (COUNTER_KEY, str(count)),
        )
    return count


def settle(config: SiteConfig, db: Database, *, wait: bool = False) -> str:
    """After a moderation change: let the running daemon rebuild, else rebuild here.

    ``wait`` rebuilds here even with a daemon running, and leaves the daemon out of it so
    two builds never race (the hidden ``--build`` flag of the comments commands).  Returns
    the one line to show.
    """
    if not wait:
        record_change(db)
        if daemon_running(config):
            return "The running daemon rebuilds the pages in a moment."
    from bridge.site import build

    return build.build(config).summary()


class ChangePoller:
    """The daemon's side: call ``on_change`` whenever the counter moves."""

    def __init__(self, db: Database, on_change: Callable[[], None]) -> None:
        self.db = db
        self.on_change = on_change
        self.seen = change_count(db)

    def poll(self) -> bool:
        count = change_count(self.db)
        if count == self.seen:
            return False
        self.seen = count
        self.on_change()
        return True


@dataclass
class BlockResult:
    pattern: str
    followers_removed: int = 0
    comments_deleted: list[str] = field(default_factory=list)


def block(ctx: Context, pattern: str) -> BlockResult:
    """Block ``pattern`` (domain, ``@user@host`` or actor URL): matching followers are
    removed and blocked authors' comments and private mentions deleted."""
    from bridge.conversations import moderation

    result = BlockResult(followers.block(ctx.db, pattern))
    for follower in followers.all_followers(ctx.db):
        if followers.is_blocked(ctx.db, follower.actor, follower.handle):
            followers.remove(ctx.db, follower.actor)
            result.followers_removed += 1
    result.comments_deleted = moderation.apply_blocks(ctx)
    return result
