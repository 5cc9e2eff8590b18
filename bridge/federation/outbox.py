"""Publishing: compare the built posts with what was federated, queue the difference.

``publish()`` reads the documents the build wrote (so what is delivered is byte for byte
what the static site serves), diffs them against the ``published`` table and enqueues:

* Create for a post never federated, when it is newer than ``federate_since`` (site.toml,
  or the moment of the first publish): the outbox serves the whole archive with true
  dates, but an old archive is never pushed to followers' timelines as if it were new;
* Update (fresh activity id, ``updated`` set) for a federated post whose object changed;
  an old post that was never federated is recorded, never announced;
* Delete (Tombstone) for a federated post that disappeared; its id then answers 410.

Replies to fediverse posts (``in_reply_to``) are resolved at publish time: when the target
is an ActivityStreams object, the post is sent with ``inReplyTo`` = that object's id, its
author tagged and addressed, and delivered to the author's inbox too, so it threads
under the original on Mastodon and notifies its author.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.db import now
from bridge.errors import BridgeError
from bridge.federation import delivery, pins
from bridge.federation.actors import first_id
from bridge.federation.context import Context
from bridge.site import activities, proofs
from bridge.site.posts import Post

log = logging.getLogger("indiebridge.publish")


class Webmentions(Protocol):
    """The webmention step of a publish, passed in by the caller (conversations sends
    them; federation must not import it): ``bridge.conversations.post_mentions``."""

    def links(self, html: str, base: str) -> set[str]:
        """Absolute links of ``html`` that point away from this site."""
        ...

    async def send(self, source: str, html: str, old_links: list[str]) -> list[Any]:
        """Send webmentions from ``source`` to the links of ``html`` and to ``old_links``."""
        ...


@dataclass
class PublishReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # backfilled: in the outbox, not pushed
    queued: int = 0
    webmentions: list[Any] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} new, {len(self.updated)} updated, {len(self.deleted)} deleted "
            f"({len(self.recorded)} older posts recorded without announcing); "
            f"{self.queued} deliveries queued"
        )


def object_digest(obj: dict[str, Any]) -> str:
    """What a change means: the object without its proof."""
    data = {k: v for k, v in obj.items() if k != "proof"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def federate_since(ctx: Context) -> dt.datetime:
    if ctx.config.federate_since is not None:
        return ctx.config.federate_since
    stored = ctx.db.get_meta("federate_since")
    if stored is None:
        moment = dt.datetime.now(dt.UTC)
        ctx.db.set_meta("federate_since", moment.isoformat())
        return moment
    return dt.datetime.fromisoformat(stored)


def _load(ctx: Context, rel: str) -> dict[str, Any]:
    path = ctx.config.output_dir / rel
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _sign(ctx: Context, obj: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    return proofs.sign_object(
        proofs.strip_proof(obj), ctx.keys.ed25519, ctx.config.ed25519_key_id, moment
    )


def signed(ctx: Context, activity: dict[str, Any]) -> dict[str, Any]:
    """``activity`` with our FEP-8b32 proof, created now (Accept, Reject, Move...)."""
    return _sign(ctx, activity, dt.datetime.now(dt.UTC).replace(microsecond=0))


async def resolve_reply(ctx: Context, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """For a reply to a fediverse post: set inReplyTo to its id, mention and address its
    author.  Returns the (re-signed when changed) object and the extra inboxes."""
    target = obj.get("inReplyTo")
    if not isinstance(target, str) or ctx.config.local_path(target) is not None:
        return obj, []
    try:
        remote = await ctx.actors.fetch_document(target)
        author_id = first_id(remote.get("attributedTo")) or first_id(remote.get("actor"))
        if not author_id:
            return obj, []
        author = await ctx.actors.get(author_id)
    except BridgeError as exc:
        log.info("in_reply_to %s is not a fediverse post (%s): webmention only", target, exc)
        return obj, []
    obj = dict(obj)
    obj["inReplyTo"] = remote.get("id", target)
    obj["cc"] = [*obj.get("cc", []), author.id]
    obj["tag"] = [
        *obj.get("tag", []),
        {"type": "Mention", "name": author.handle, "href": author.id},
    ]
    return obj, [author.inbox]


def _interacted_inboxes(ctx: Context, slug: str) -> list[str]:
    """Inboxes of fediverse people who replied to, liked or boosted a post."""
    out = []
    for s, comment in ctx.comments.iter_all():
        if s != slug or comment.protocol != "activitypub":
            continue
        actor = ctx.actors.cached(comment.author.url) if comment.author.url else None
        if actor is not None:
            out.append(actor.shared_inbox or actor.inbox)
    return out


async def publish(
    ctx: Context, posts: list[Post], *, webmentions: Webmentions | None = None
) -> PublishReport:
    """Queue Create/Update/Delete for the difference since the last publish.

    The site must have been built first: the documents are read from the output folder.
    With ``webmentions``, each new or changed post also mentions every page it links to
    (and the links an edit removed); without, no webmention is sent and none is recorded.
    """
    report = PublishReport()
    since = federate_since(ctx)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    inboxes = delivery.inboxes_for_followers(ctx.db)
    rows = {r["slug"]: r for r in ctx.db.query("SELECT * FROM published")}
    current = {p.slug for p in posts}
    wm_jobs: list[tuple[Post, list[str]]] = []

    for post in sorted(posts, key=lambda p: p.date):
        rel = f"ap/posts/{post.slug}.json"
        obj = _load(ctx, rel)
        digest = object_digest(obj)
        row = rows.get(post.slug)
        old_links: list[str] = json.loads(row["links"]) if row else []
        if row is not None and row["state"] == "live" and row["digest"] == digest:
            continue
        federated = bool(row["federated"]) if row is not None and row["state"] == "live" else False
        is_new = row is None or row["state"] != "live"
        if is_new and post.date < since:
            report.recorded.append(post.slug)
            federated = False
            if webmentions is not None:  # remembered, not mentioned
                old_links = sorted(webmentions.links(post.html, ctx.config.base_url + "/"))
        elif is_new or federated:
            full, extra = await resolve_reply(ctx, obj)
            if is_new:
                if full is not obj:
                    full = _sign(ctx, full, post.last_modified)
                activity = _sign(ctx, activities.create(ctx.config, full), post.date)
                report.created.append(post.slug)
            else:
                full = dict(full)
                full.setdefault("updated", activities.iso(moment))
                full = _sign(ctx, full, moment)
                activity = _sign(ctx, activities.update(ctx.config, full, moment), moment)
                report.updated.append(post.slug)
            targets = list(dict.fromkeys(inboxes + extra))
            report.queued += delivery.enqueue(ctx.db, activity, targets)
            ctx.enqueue(activity, [])  # wakes a running worker; rows are already queued
            federated = True
        with ctx.db.tx() as con:
            con.execute(
                "INSERT INTO published(slug, object_id, digest, as_type, links, state, federated, "
                "first_published, updated) VALUES (?, ?, ?, ?, ?, 'live', ?, ?, ?) "
                "ON CONFLICT(slug) DO UPDATE SET object_id = excluded.object_id, "
                "digest = excluded.digest, as_type = excluded.as_type, state = 'live', "
                "federated = excluded.federated, updated = excluded.updated",
                (
                    post.slug,
                    obj["id"],
                    digest,
                    obj["type"],
                    json.dumps(old_links),
                    int(federated),
                    now(),
                    now(),
                ),
            )
        if post.slug not in report.recorded:
            wm_jobs.append((post, old_links))

    report.queued += _publish_actor(ctx, inboxes, moment)
    report.queued += pins.publish_pins(ctx, inboxes, moment)  # Add/Remove to featured

    for slug, row in rows.items():
        if slug in current or row["state"] != "live":
            continue
        if row["federated"]:
            activity = _sign(ctx, activities.delete(ctx.config, row["object_id"], moment), moment)
            targets = list(dict.fromkeys(inboxes + _interacted_inboxes(ctx, slug)))
            report.queued += delivery.enqueue(ctx.db, activity, targets)
            ctx.enqueue(activity, [])
        report.deleted.append(slug)
        with ctx.db.tx() as con:
            con.execute(
                "UPDATE published SET state = 'deleted', updated = ? WHERE slug = ?", (now(), slug)
            )
        if webmentions is not None:
            report.webmentions += await webmentions.send(
                ctx.config.post_url(slug), "", json.loads(row["links"])
            )

    if webmentions is not None:
        for post, old_links in wm_jobs:
            html = post.html
            if post.in_reply_to:
                html += f'<a href="{post.in_reply_to}"></a>'
            source = ctx.config.post_url(post.slug)
            results = await webmentions.send(source, html, old_links)
            report.webmentions += results
            links = sorted(
                {r.target for r in results} | webmentions.links(html, ctx.config.base_url + "/")
            )
            with ctx.db.tx() as con:
                con.execute(
                    "UPDATE published SET links = ? WHERE slug = ?", (json.dumps(links), post.slug)
                )
    return report


def _publish_actor(ctx: Context, inboxes: list[str], moment: dt.datetime) -> int:
    """Send Update(actor) when the profile changed since the last publish (name, bio,
    avatar, fields, alsoKnownAs for a Move into the blog, keys), so caches refresh."""
    actor = _load(ctx, "ap/actor.json")
    digest = object_digest(actor)
    previous = ctx.db.get_meta("actor_digest")
    ctx.db.set_meta("actor_digest", digest)
    if previous is None or previous == digest or not inboxes:
        return 0
    activity = _sign(ctx, activities.actor_update(ctx.config, actor, moment), moment)
    queued = delivery.enqueue(ctx.db, activity, inboxes)
    ctx.enqueue(activity, [])
    return queued


def deleted_object(ctx: Context, object_id: str) -> dict[str, Any] | None:
    """A Tombstone for a post id that was deleted after being published."""
    row = ctx.db.one(
        "SELECT as_type, updated FROM published WHERE object_id = ? AND state = 'deleted'",
        (object_id,),
    )
    if row is None:
        return None
    return activities.tombstone(
        object_id, row["as_type"], dt.datetime.fromtimestamp(row["updated"], dt.UTC)
    )
