"""Publishing: compare the built posts with what was federated, queue the difference.

``publish()`` reads the documents the build wrote (so what is delivered is byte for byte
what the static site serves), diffs them against the ``published`` table and enqueues:

* Create for a post never federated, when it is newer than ``federate_since`` (site.toml,
  or the moment of the first publish): the outbox serves the whole archive with true
  dates, but an old archive is never pushed to followers' timelines as if it were new;
* Update for a federated post whose object changed, its ``updated`` later than the one
  sent before; an old post that was never federated is recorded, never announced;
* Delete (Tombstone) for a federated post that disappeared; its ids then answer 410
  (``bridge.federation.published``), and a post written again under the same slug gets
  the next generation of id (``bridge.site.ledger``) and a new Create;
* Update(actor) when the built actor document changed (and on the first publish when
  someone already follows).

Activity ids follow ``bridge.site.ledger``: Update/Delete/Move ids are derived from the
content and chained on the previous activity about the object, so no two differ under one
id; a queued activity is never replaced (``PublishError``).  ``dry_run`` plans the same
activities and queues, records and sends nothing.

Replies to fediverse posts (``in_reply_to``) are resolved at publish time: when the target
is an ActivityStreams object, the post is sent with ``inReplyTo`` = that object's id, its
author tagged and addressed, and delivered to the author's inbox too, so it threads
under the original on Mastodon and notifies its author.  Accounts mentioned in a post's
text (``@user@host``, resolved by ``mention_resolver`` before the build) get its Create,
Update and Delete in their inboxes as well.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from bridge.db import now
from bridge.errors import BridgeError, PublishError
from bridge.federation import delivery, mention_resolver, pins, published, quoting
from bridge.federation.actors import first_id
from bridge.federation.context import Context
from bridge.federation.publish_report import Planned as Planned
from bridge.federation.publish_report import PublishReport as PublishReport
from bridge.federation.published import object_digest as object_digest
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


def federate_since(ctx: Context, *, remember: bool = True) -> dt.datetime:
    """Posts older than this are recorded, not announced: the setting, else the moment of
    the first publish (stored unless ``remember`` is false, as in a dry run)."""
    if ctx.config.federate_since is not None:
        return ctx.config.federate_since
    stored = ctx.db.get_meta("federate_since")
    if stored is None:
        moment = dt.datetime.now(dt.UTC)
        if remember:
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
    ctx: Context,
    posts: list[Post],
    *,
    webmentions: Webmentions | None = None,
    dry_run: bool = False,
    moment: dt.datetime | None = None,
) -> PublishReport:
    """Queue Create/Update/Delete for the difference since the last publish.

    The site must have been built first: the documents are read from the output folder.
    With ``webmentions``, each new or changed post also mentions every page it links to
    (and the links an edit removed); without, no webmention is sent and none is recorded.
    With ``dry_run`` nothing is queued or recorded: ``report.planned`` says what would be.
    ``moment`` (default: now) dates the Updates and Deletes.

    Raises:
        PublishError: a built document is missing (build first), or an activity id is
            already queued with another body (it is never replaced silently).
    """
    report = PublishReport(dry_run=dry_run)
    since = federate_since(ctx, remember=not dry_run)
    moment = (moment or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    inboxes = delivery.inboxes_for_followers(ctx.db)
    book = published.read_ledger(ctx.db)
    rows = {r["slug"]: r for r in ctx.db.query("SELECT * FROM published")}
    wm_jobs: list[tuple[Post, list[str]]] = []
    restamped: list[tuple[str, str]] = []  # unchanged objects whose file was rewritten
    out = str(ctx.config.output_dir)  # one string: 10,000 Path joins cost more than the stats

    for post in sorted(posts, key=lambda p: p.date):
        object_id = book.object_id(ctx.config, post.slug)
        row = rows.get(post.slug)
        live = row is not None and row["state"] == "live" and row["object_id"] == object_id
        stamp = published.file_stamp(f"{out}/{_object_rel(ctx, object_id)}")
        if live and row is not None and stamp and row["file_stamp"] == stamp:
            continue  # the very file its digest was taken from
        obj = _load_object(ctx, object_id)
        digest = object_digest(obj)
        if live and row is not None and row["digest"] == digest:
            restamped.append((stamp, post.slug))
            continue
        old_links: list[str] = json.loads(row["links"]) if row else []
        federated = bool(row["federated"]) if live and row is not None else False
        # A post deleted after it federated comes back to its followers whatever its date.
        returning = row is not None and not live and bool(row["federated"])
        planned: Planned | None = None
        updated = ""
        if not live and post.date < since and not returning:
            report.recorded.append(post.slug)
            if webmentions is not None:  # remembered, not mentioned
                old_links = sorted(webmentions.links(post.html, ctx.config.base_url + "/"))
        elif not live or federated:
            full, extra = await resolve_reply(ctx, obj)
            if not live:
                if full is not obj:
                    full = _sign(ctx, full, post.last_modified)
                activity = _sign(ctx, activities.create(ctx.config, full), post.date)
                report.created.append(post.slug)
            else:
                link = published.chain(ctx.db, object_id)
                full = dict(full)
                full["updated"] = published.next_updated(
                    moment, full.get("updated"), link.last_updated
                )
                updated = full["updated"]
                full = _sign(ctx, full, moment)
                activity = activities.update(ctx.config, full, moment, previous=link.last_activity)
                activity = _sign(ctx, activity, moment)
                report.updated.append(post.slug)
            mentioned = mention_resolver.mentioned_inboxes(ctx, full)
            mentioned += mention_resolver.recipients(ctx, post.slug)
            mentioned += quoting.author_inboxes(ctx, post)  # quote_of: kept like a mention
            planned = Planned(activity, list(dict.fromkeys(inboxes + extra + mentioned)))
            if not dry_run:
                mention_resolver.remember(ctx, post.slug, mentioned)
                report.queued += await quoting.request(ctx, post, full)  # quote_of: ask once
            federated = True
        if planned is not None:
            report.planned.append(planned)
            report.queued += _queue(ctx, planned, dry_run)
        if dry_run:
            continue
        with ctx.db.tx() as con:
            con.execute(
                "INSERT INTO published(slug, object_id, digest, file_stamp, as_type, links, "
                "state, federated, first_published, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, 'live', ?, ?, ?) "
                "ON CONFLICT(slug) DO UPDATE SET object_id = excluded.object_id, "
                "digest = excluded.digest, file_stamp = excluded.file_stamp, "
                "as_type = excluded.as_type, state = 'live', links = excluded.links, "
                "federated = excluded.federated, updated = excluded.updated",
                (
                    post.slug,
                    object_id,
                    digest,
                    stamp,
                    obj["type"],
                    json.dumps(old_links),
                    int(federated),
                    now(),
                    now(),
                ),
            )
            if planned is not None:
                published.record_sent(
                    con,
                    object_id=object_id,
                    slug=post.slug,
                    as_type=obj["type"],
                    activity_id=planned.activity["id"],
                    updated=updated,
                )
        if post.slug not in report.recorded:
            wm_jobs.append((post, old_links))

    if restamped and not dry_run:
        with ctx.db.tx() as con:
            con.executemany("UPDATE published SET file_stamp = ? WHERE slug = ?", restamped)

    report.queued += _publish_actor(ctx, report, inboxes, moment)
    if not dry_run:
        report.queued += pins.publish_pins(ctx, inboxes, moment)  # Add/Remove to featured
    current = {p.slug for p in posts}
    for slug, row in rows.items():
        if slug in current or row["state"] != "live":
            continue
        await _delete(ctx, report, slug, row, inboxes, moment, webmentions)

    if webmentions is not None and not dry_run:
        for post, old_links in wm_jobs:
            await _mention(ctx, report, webmentions, post, old_links)
    return report


def _object_rel(ctx: Context, object_id: str) -> str:
    return (ctx.config.local_path(object_id) or "").lstrip("/")


def _load_object(ctx: Context, object_id: str) -> dict[str, Any]:
    rel = _object_rel(ctx, object_id)
    try:
        return _load(ctx, rel)
    except FileNotFoundError:
        raise PublishError(
            f"{ctx.config.output_dir / rel}: missing; run 'indiebridge build' before publishing"
        ) from None


def _queue(ctx: Context, planned: Planned, dry_run: bool) -> int:
    """Queue one activity; never replaces a queued body with another under the same id."""
    activity_id = planned.activity["id"]
    row = ctx.db.one("SELECT body FROM outgoing WHERE id = ?", (activity_id,))
    if row is not None and json.loads(row["body"]) != planned.activity:
        raise PublishError(f"activity {activity_id} is already queued with other content")
    if dry_run or not planned.inboxes:
        return 0 if not dry_run else len(planned.inboxes)
    queued = delivery.enqueue(ctx.db, planned.activity, planned.inboxes)
    ctx.wake_delivery()  # rows are already queued
    return queued


async def _delete(
    ctx: Context,
    report: PublishReport,
    slug: str,
    row: Any,
    inboxes: list[str],
    moment: dt.datetime,
    webmentions: Webmentions | None,
) -> None:
    """A post that disappeared: Delete its object (if it federated); its ids answer 410."""
    object_id = str(row["object_id"])
    planned: Planned | None = None
    if row["federated"]:
        link = published.chain(ctx.db, object_id)
        activity = activities.delete(ctx.config, object_id, moment, previous=link.last_activity)
        activity = _sign(ctx, activity, moment)
        mentioned = mention_resolver.recipients(ctx, slug)
        planned = Planned(
            activity, list(dict.fromkeys(inboxes + _interacted_inboxes(ctx, slug) + mentioned))
        )
        report.planned.append(planned)
        report.queued += _queue(ctx, planned, report.dry_run)
    report.deleted.append(slug)
    if report.dry_run:
        return
    with ctx.db.tx() as con:
        con.execute(
            "UPDATE published SET state = 'deleted', updated = ? WHERE slug = ?", (now(), slug)
        )
        published.record_sent(
            con,
            object_id=object_id,
            slug=slug,
            as_type=str(row["as_type"]),
            activity_id=planned.activity["id"] if planned else "",
            deleted=now(),
        )
    if webmentions is not None:
        report.webmentions += await webmentions.send(
            ctx.config.post_url(slug), "", json.loads(row["links"])
        )


async def _mention(
    ctx: Context,
    report: PublishReport,
    webmentions: Webmentions,
    post: Post,
    old_links: list[str],
) -> None:
    html = post.html
    if post.in_reply_to:
        html += f'<a href="{post.in_reply_to}"></a>'
    results = await webmentions.send(ctx.config.post_url(post.slug), html, old_links)
    report.webmentions += results
    links = sorted({r.target for r in results} | webmentions.links(html, ctx.config.base_url + "/"))
    with ctx.db.tx() as con:
        con.execute("UPDATE published SET links = ? WHERE slug = ?", (json.dumps(links), post.slug))


def _publish_actor(
    ctx: Context, report: PublishReport, inboxes: list[str], moment: dt.datetime
) -> int:
    """Send Update(actor) when the profile changed since the last publish (name, bio,
    avatar, fields, alsoKnownAs for a Move into the blog, movedTo, keys), so caches refresh."""
    actor = _load(ctx, "ap/actor.json")
    digest = object_digest(actor)
    previous = ctx.db.get_meta("actor_digest")
    if previous == digest:
        return 0
    if not report.dry_run:
        ctx.db.set_meta("actor_digest", digest)
    if previous is None and not inboxes:
        return 0  # the first publish and nobody follows yet: nobody cached the profile
    return queue_actor_activity(
        ctx,
        report,
        actor,
        inboxes,
        moment,
        lambda prev: activities.actor_update(ctx.config, actor, moment, previous=prev),
    )


def queue_actor_activity(
    ctx: Context,
    report: PublishReport,
    actor: dict[str, Any],
    inboxes: list[str],
    moment: dt.datetime,
    make: Callable[[str], dict[str, Any]],
) -> int:
    """Queue an activity about the actor (Update, Move), chained on the previous one."""
    link = published.chain(ctx.db, ctx.config.actor_id)
    planned = Planned(_sign(ctx, make(link.last_activity), moment), inboxes)
    report.planned.append(planned)
    report.profile = report.profile or planned.activity["type"] == "Update"
    queued = _queue(ctx, planned, report.dry_run)
    if not report.dry_run:
        with ctx.db.tx() as con:
            published.record_sent(
                con,
                object_id=ctx.config.actor_id,
                slug="",
                as_type=str(actor.get("type", "Person")),
                activity_id=planned.activity["id"],
            )
    return queued


def live_object_path(ctx: Context, slug: str) -> str:
    """The output file of the post ``slug``'s current object (content negotiation)."""
    object_id = published.read_ledger(ctx.db).object_id(ctx.config, slug)
    return _object_rel(ctx, object_id)
