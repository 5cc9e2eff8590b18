"""Whether ``publish`` has anything to do, found from the state database and the built files.

The posts are asked about through ``PostFacts`` (slugs, handles, quoted posts): made from
the built posts, or kept by the build stamp when the build found nothing changed, so a
publish with nothing new loads no post at all.

``indiebridge publish`` asks three questions before it loads the HTTP stack, the delivery
worker or the keys; when every answer is no, it prints what a publish would print and
stops (at 10,000 posts, importing and setting up what sending needs took more time than
the answers):

* ``lookups_due``: a ``@user@host`` handle or a ``quote_of`` post that
  ``mention_resolver.resolve`` would look up (missing from its cache, or expired);
* ``publish_due``: anything ``outbox.publish`` would queue or record: a post without a
  live ``published`` row, one whose object file changed since its digest was taken
  (``published.file_stamp``: size, mtime and inode), a live post that disappeared, a
  changed actor document, changed pins, or the first publish (``federate_since``);
* ``deliveries_due``: a delivery row the worker would send now (queued and due, or left
  in ``sending`` by a killed worker, which ``recover`` re-queues).

Each answer is conservative: "yes" only means the full publish runs, which decides as
before; "no" is given only when that publish would queue, record and send nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from bridge.config import SiteConfig
from bridge.db import Database
from bridge.federation import pins, published
from bridge.site import mentions
from bridge.site.build_stamp import PostFacts
from bridge.site.posts import Post


def lookups_due(
    config: SiteConfig,
    db: Database,
    posts: PostFacts | Sequence[Post],
    *,
    now: float | None = None,
) -> bool:
    """True when a handle or a quoted post of ``posts`` is missing from its cache or
    expired (the same test as ``mention_resolver.resolve`` and ``quoting.fetch_quoted``)."""
    facts = _facts(posts)
    moment = time.time() if now is None else now
    rows = db.query("SELECT handle, expires FROM mention_cache")
    handles = {str(r[0]): float(r[1]) for r in rows}
    quoted = {str(r[0]): float(r[1]) for r in db.query("SELECT url, expires FROM quote_cache")}
    if any(quoted.get(url, 0.0) <= moment for url in facts.quoted):
        return True
    own = mentions.normalise(config.handle)
    return any(h != own and handles.get(h, 0.0) <= moment for h in facts.handles)


def publish_due(config: SiteConfig, db: Database, posts: PostFacts | Sequence[Post]) -> bool:
    """True unless ``outbox.publish`` of ``posts`` would queue and record nothing."""
    if config.federate_since is None and db.get_meta("federate_since") is None:
        return True  # the first publish remembers its moment
    live = {
        str(r[0]): (str(r[1]), str(r[2] or ""))
        for r in db.query("SELECT slug, object_id, file_stamp FROM published WHERE state = 'live'")
    }
    gone = {
        str(r[0])
        for r in db.query("SELECT object_id FROM federated_objects WHERE deleted IS NOT NULL")
    }
    out, base = str(config.output_dir), config.base_url
    slugs = set()
    for slug in _facts(posts).slugs:
        slugs.add(slug)
        row = live.get(slug)
        if row is None:
            return True  # never published, or deleted: a Create
        object_id, stamp = row
        if object_id in gone or not object_id.startswith(base + "/"):
            return True  # written again under a new id
        seen = published.file_stamp(out + object_id[len(base) :])
        if not seen or seen != stamp:
            return True  # rebuilt (or gone): its digest decides
    if len(live) != len(slugs):
        return True  # a live post disappeared: a Delete
    return _actor_changed(config, db) or _pins_changed(config, db)


def _facts(posts: PostFacts | Sequence[Post]) -> PostFacts:
    return posts if isinstance(posts, PostFacts) else PostFacts.of(posts)


def _actor_changed(config: SiteConfig, db: Database) -> bool:
    try:
        actor = json.loads((config.output_dir / "ap" / "actor.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # the publish names the problem
    return not isinstance(actor, dict) or published.object_digest(actor) != db.get_meta(
        "actor_digest"
    )


def _pins_changed(config: SiteConfig, db: Database) -> bool:
    try:
        current = pins.pinned_in(config)
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return db.get_meta(pins.META_KEY) != json.dumps(current)


def deliveries_due(db: Database, *, now: float | None = None) -> bool:
    """True when the delivery worker would send something now: a row queued and due, or
    one left ``sending`` by a worker that was killed (``delivery.queue.recover``)."""
    moment = time.time() if now is None else now
    row = db.one(
        "SELECT 1 FROM deliveries WHERE state = 'sending' "
        "OR (state = 'queued' AND next_try <= ?) LIMIT 1",
        (moment,),
    )
    return row is not None
