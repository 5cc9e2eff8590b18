"""What was federated, as the build needs it: each post's object id and the ids that are gone.

``indiebridge publish`` (``bridge.federation.outbox``) records in the state database what it
sent: the ``published`` row of each slug and, in ``federated_objects``, every object id a
post has had, the last activity sent about it and when it was deleted.  The build reads
those rows (read-only, no network) so that the files it writes use the ids publish will send.

The id scheme (FEDERATION.md, "Ids"):

* a post's object is ``/ap/posts/<slug>.json``; once that object was deleted (its slug gone
  from ``content/`` at a publish) a post written again with the same slug becomes
  generation 2, ``/ap/posts/<slug>/g2.json``, then ``g3``...  Mastodon keeps a tombstone for
  every deleted status URI and ignores a later Create of it
  (``app/lib/activitypub/activity/create.rb``, ``tombstone_exists?``), so a re-created post
  needs a fresh id; the old ids answer 410 for good;
* the Create of an object is ``<object id without .json>/create.json``: one per generation;
* Update, Delete, Update(actor) and Move ids are ``<object id>#<kind>/<hash>``: the hash covers
  the activity's content and the id of the previous activity about the same object, so
  distinct content gives distinct ids, and so does the same content sent again later
  (receivers such as Fedify and Mastodon drop an activity whose id they have seen).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from bridge.config import SiteConfig
from bridge.db import read_only
from bridge.site import quote_card
from bridge.site.mentions import Account, read_accounts
from bridge.site.posts import QuotedPost

MOVED_TO = "moved_to"  # meta key: JSON {"id", "url", "handle"} of the account moved to

_GENERATION = re.compile(r"/g([0-9]+)\.json$")


def post_object_id(config: SiteConfig, slug: str, generation: int = 1) -> str:
    """The object id of generation ``generation`` of the post ``slug``."""
    if generation <= 1:
        return config.post_ap_id(slug)
    return f"{config.base_url}/ap/posts/{slug}/g{generation}.json"


def generation_of(object_id: str) -> int:
    """1 for ``/ap/posts/<slug>.json``, N for ``/ap/posts/<slug>/gN.json``."""
    m = _GENERATION.search(object_id)
    return int(m.group(1)) if m else 1


def create_id(object_id: str) -> str:
    return object_id.removesuffix(".json") + "/create.json"


def activity_id(base: str, kind: str, activity: dict[str, Any], previous: str = "") -> str:
    """``<base>#<kind>/<hash>``: the hash of the activity without ``id`` and ``proof``, and of
    the previous activity's id about the same object (``""`` when there was none)."""
    body = {k: v for k, v in activity.items() if k not in ("id", "proof")}
    text = json.dumps([previous, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{base}#{kind}/{hashlib.sha256(text.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class GoneObject:
    object_id: str
    slug: str
    as_type: str
    deleted: float


@dataclass(frozen=True)
class Ledger:
    """The rows of ``published`` and ``federated_objects`` that ids and 410s depend on."""

    # slug -> (object id, state 'live' | 'deleted') of its ``published`` row
    published: dict[str, tuple[str, str]] = field(default_factory=dict)
    # object id -> when it was deleted, for every deleted object id of every generation
    gone: dict[str, GoneObject] = field(default_factory=dict)
    # slug -> the highest generation any of its ids reached
    generations: dict[str, int] = field(default_factory=dict)
    # the account this blog moved to (``indiebridge move``): {"id", "url", "handle"}
    moved_to: dict[str, str] | None = None
    # accepted followers (the count the static followers collection shows)
    followers: int = 0
    # handles resolved so far (``bridge.site.mentions``), read with the rest
    mentions: dict[str, Account] = field(default_factory=dict)
    # quoted posts' cards by URL and our quote requests by slug (``bridge.site.quote_card``)
    quote_cards: dict[str, QuotedPost] = field(default_factory=dict)
    quote_requests: dict[str, dict[str, str]] = field(default_factory=dict)

    def object_id(self, config: SiteConfig, slug: str) -> str:
        """The id the post ``slug`` is built and published with."""
        row = self.published.get(slug)
        if row is None:
            return post_object_id(config, slug, self.generations.get(slug, 0) + 1)
        object_id, state = row
        if state == "live" and object_id not in self.gone:
            return object_id
        top = max(self.generations.get(slug, 1), generation_of(object_id))
        return post_object_id(config, slug, top + 1)

    def gone_ids(self, config: SiteConfig, live: set[str]) -> list[str]:
        """Object ids that answer 410: deleted ones, and those of removed posts that the
        next publish deletes (``live``: the slugs of the current posts)."""
        out = set(self.gone)
        for slug, (object_id, _state) in self.published.items():
            if slug not in live or object_id != self.object_id(config, slug):
                out.add(object_id)
        return sorted(out)

    def gone_slugs(self, live: set[str]) -> list[str]:
        """Slugs whose HTML page answers 410: federated once, not a current post."""
        return sorted(set(self.published) - live)


def read(con: sqlite3.Connection, config: SiteConfig | None = None) -> Ledger:
    """The ledger from the state database (tables missing in an older database are empty);
    with ``config``, the quote cards too (their sanitising needs the site's URL)."""
    try:
        published = {
            str(r[0]): (str(r[1]), str(r[2]))
            for r in con.execute("SELECT slug, object_id, state FROM published")
        }
    except sqlite3.OperationalError:
        published = {}
    gone: dict[str, GoneObject] = {}
    generations: dict[str, int] = {}
    try:
        rows = con.execute("SELECT object_id, slug, as_type, deleted FROM federated_objects")
        for object_id, slug, as_type, deleted in rows:
            if slug:
                generations[slug] = max(generations.get(slug, 0), generation_of(object_id))
            if deleted is not None:
                gone[object_id] = GoneObject(object_id, slug, as_type, float(deleted))
    except sqlite3.OperationalError:
        pass
    for slug, (object_id, _) in published.items():
        generations[slug] = max(generations.get(slug, 0), generation_of(object_id))
    return Ledger(
        published=published,
        gone=gone,
        generations=generations,
        moved_to=_moved_to(con),
        followers=_followers(con),
        mentions=read_accounts(con),
        **_quotes(con, config),
    )


def _quotes(con: sqlite3.Connection, config: SiteConfig | None) -> dict[str, Any]:
    if config is None:
        return {}
    cards, requests = quote_card.read_rows(con, config)
    return {"quote_cards": cards, "quote_requests": requests}


def _followers(con: sqlite3.Connection) -> int:
    try:
        row = con.execute("SELECT count(*) FROM followers WHERE state = 'accepted'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def _moved_to(con: sqlite3.Connection) -> dict[str, str] | None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (MOVED_TO,)).fetchone()
    except sqlite3.OperationalError:
        return None
    try:
        value = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    return {k: str(value.get(k) or value["id"]) for k in ("id", "url", "handle")}


def read_file(config: SiteConfig) -> Ledger:
    """The ledger of a site's state database, opened read-only; empty when there is none.

    The build's one read of the database: the follower count, the resolved mentions
    and the quote cards come with it."""
    return read_only(config.db_path, lambda con: read(con, config), Ledger())


# Exactly the statements ``read`` runs (``test_ledger`` checks it): their rows, hashed,
# tell a build whether anything it reads from the state database changed, whatever else
# the daemon writes meanwhile (``bridge.site.build_stamp``).
FINGERPRINT_QUERIES = (
    "SELECT slug, object_id, state FROM published",
    "SELECT object_id, slug, as_type, deleted FROM federated_objects",
    "SELECT value FROM meta WHERE key = ?",
    "SELECT count(*) FROM followers WHERE state = 'accepted'",
    "SELECT handle, actor_id, profile_url, inbox FROM mention_cache",
    "SELECT url, object_id, card FROM quote_cache",
    "SELECT slug, quoted, state, stamp FROM quotes_out",
)


def fingerprint(config: SiteConfig) -> str:
    """A hash of the rows ``read_file`` reads; "" without a database, and a value that
    matches nothing when it cannot be read."""
    if not config.db_path.exists():
        return ""
    found = read_only(config.db_path, _fingerprint, None)
    return found if found is not None else f"unreadable {time.time_ns()}"


def _fingerprint(con: sqlite3.Connection) -> str:
    h = hashlib.sha256()
    for query in FINGERPRINT_QUERIES:
        try:
            rows = con.execute(query, (MOVED_TO,) if "?" in query else ()).fetchall()
        except sqlite3.OperationalError:  # a table an older database lacks
            rows = None
        h.update(repr((query, rows)).encode())
    return h.hexdigest()
