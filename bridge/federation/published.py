"""The record of what was federated: written by ``outbox.publish``, read by the daemon.

Two tables of the state database (``bridge.db``): ``published`` holds one row per slug (its
current object id, the digest of what was sent, live or deleted), ``federated_objects`` one
row per object id ever sent (every generation of a post, and the actor) with the last
activity sent about it, the last ``updated`` it carried and when it was deleted.  The build
reads the same rows through ``bridge.site.ledger``; the daemon asks this module what a URL
that has no file answers: 410 Gone for a deleted post's HTML page and for each of its ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import SiteConfig
from bridge.db import Database, now
from bridge.site import activities, ledger
from bridge.site.gone import PAGE, gone_page


@dataclass(frozen=True)
class Chain:
    """What the next activity about an object builds on."""

    last_activity: str = ""
    last_updated: str = ""


def object_digest(obj: dict[str, Any]) -> str:
    """What a change means: the object without its proof."""
    data = {k: v for k, v in obj.items() if k != "proof"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_stamp(path: str | Path) -> str:
    """Size, modification time and inode of a built file, "" when there is none.

    ``publish`` keeps the stamp of the object file each digest was taken from, and reads
    and digests only the files whose stamp changed: the build replaces a file it
    changes (a new inode) and leaves an unchanged one alone, bytes and mtime.  At
    10,000 posts reading and digesting every object was 3 s of a publish that sent nothing.
    """
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def read_ledger(db: Database) -> ledger.Ledger:
    return ledger.read(db.con)


def chain(db: Database, object_id: str) -> Chain:
    row = db.one(
        "SELECT last_activity, last_updated FROM federated_objects WHERE object_id = ?",
        (object_id,),
    )
    if row is None:
        return Chain()
    return Chain(str(row["last_activity"]), str(row["last_updated"]))


def record_sent(
    con: sqlite3.Connection,
    *,
    object_id: str,
    slug: str,
    as_type: str,
    activity_id: str,
    updated: str = "",
    deleted: float | None = None,
) -> None:
    """Remember ``activity_id`` as the last activity about ``object_id`` (inside ``con``'s
    transaction); ``deleted`` marks the object gone for good."""
    con.execute(
        "INSERT INTO federated_objects(object_id, slug, as_type, last_activity, last_updated, "
        "deleted) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(object_id) DO UPDATE SET "
        "last_activity = excluded.last_activity, "
        "last_updated = CASE WHEN excluded.last_updated = '' THEN last_updated "
        "ELSE excluded.last_updated END, "
        "deleted = COALESCE(excluded.deleted, deleted)",
        (object_id, slug, as_type, activity_id, updated, deleted),
    )


def next_updated(moment: dt.datetime, wanted: str | None, previous: str) -> str:
    """The ``updated`` of an edit: the post's own (or now), but always after the one sent
    before, so receivers that keep the newest edit (Mastodon compares ``updated``) keep this
    one even when two edits leave in the same second or arrive out of order."""
    value = wanted or activities.iso(moment)
    if previous and value <= previous:
        later = dt.datetime.strptime(previous, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        value = activities.iso(later + dt.timedelta(seconds=1))
    return value


# ---- what the daemon answers for URLs without a file ------------------------------------------


@dataclass(frozen=True)
class Gone:
    media_type: str
    body: dict[str, Any] | str


def gone(config: SiteConfig, db: Database, url: str, live: set[str]) -> Gone | None:
    """The 410 answer for ``url`` (one of ours) when it names a deleted post, else None.

    ``live`` is the set of slugs the output currently has (the daemon passes the post
    folders it serves).  An object id answers a ``Tombstone``; the HTML page a short page.
    """
    book = read_ledger(db)
    for object_id in book.gone_ids(config, live):
        if url in (object_id, ledger.create_id(object_id)):
            record = book.gone.get(object_id)
            as_type = record.as_type if record else _as_type(db, object_id)
            when = record.deleted if record else now()
            return Gone(
                activities.AP_CONTENT_TYPE,
                activities.tombstone(object_id, as_type, dt.datetime.fromtimestamp(when, dt.UTC)),
            )
    for slug in book.gone_slugs(live):
        folder = config.post_url(slug)  # the page, and everything below it (comment pages)
        if url.startswith(folder) or url == folder.rstrip("/"):
            page = config.output_dir / PAGE
            body = page.read_text(encoding="utf-8") if page.is_file() else gone_page(config)
            return Gone("text/html; charset=utf-8", body)
    return None


def _as_type(db: Database, object_id: str) -> str:
    row = db.one("SELECT as_type FROM published WHERE object_id = ?", (object_id,))
    return str(row["as_type"]) if row else "Note"
