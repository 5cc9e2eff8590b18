"""The composition root: the one place that wires the library's services together.

The daemon (``app.Daemon``), ``indiebridge publish``, the writing loop's auto_publish and
every CLI command that needs a ``Context`` build it here, so the delivery worker, its
``on_gone`` rule and the inbox's handler table exist in one version only:

* ``build_context`` - the ``Context`` with its two hooks given at construction
  (``on_queued`` wakes this process's delivery worker, ``mark_dirty`` asks for a rebuild);
* ``delivery_worker`` - the ``DeliveryWorker`` for the site's settings; a 410 from an inbox
  removes the followers behind it; ``delivery_pool`` - the daemon's default: that worker
  in ``delivery_processes`` child processes on the one queue;
* ``inbox_handlers`` - the inbox's dispatch table, with the conversation hooks (Follow
  and Undo log their event, ``bridge.daemon.events``);
* ``publish_and_deliver`` - ``outbox.publish`` for a list of posts, then delivery of the
  queue unless a running daemon owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from bridge import keys as key_store
from bridge.config import SiteConfig
from bridge.daemon import events
from bridge.daemon.lock import DaemonLock, lock_path
from bridge.db import Database
from bridge.federation import delivery, followers, inbox, mention_resolver, outbox
from bridge.federation.context import Context, make_context
from bridge.federation.delivery.pool import IDLE_EXIT, default_processes
from bridge.keys import ActorKeys
from bridge.site.comments import CommentStore

if TYPE_CHECKING:
    from bridge.federation.delivery.forkserver import ForkClient
    from bridge.site.posts import Post


def build_context(
    config: SiteConfig,
    db: Database,
    actor_keys: ActorKeys,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_queued: Callable[[], None] | None = None,
    mark_dirty: Callable[[str], None] | None = None,
    comments: CommentStore | None = None,
) -> Context:
    """The services of one site; without hooks, queued rows wait for a worker to poll them
    and comment changes wait for the next build."""
    return make_context(
        config,
        db,
        actor_keys,
        transport=transport,
        on_queued=on_queued,
        mark_dirty=mark_dirty,
        comments=comments,
    )


def delivery_worker(
    config: SiteConfig,
    db: Database,
    actor_keys: ActorKeys,
    *,
    poll_interval: float | None = None,
) -> delivery.DeliveryWorker:
    """The delivery worker for the site's settings (signature scheme, private addresses).

    A 410 Gone from an inbox removes every follower delivered through it.  The daemon
    passes ``poll_interval`` so rows queued by ``publish`` in another process are found.
    """

    def gone(inbox_url: str) -> None:
        followers.remove_by_inbox(db, inbox_url)

    options = {} if poll_interval is None else {"poll_interval": poll_interval}
    return delivery.DeliveryWorker.from_config(config, db, actor_keys, on_gone=gone, **options)


def delivery_pool(
    config: SiteConfig,
    db: Database,
    actor_keys: ActorKeys,
    *,
    poll_interval: float | None = None,
    spawner: ForkClient | None = None,
) -> delivery.DeliveryPool | delivery.DeliveryWorker:
    """The daemon's delivery: ``delivery_processes`` child processes on the one queue
    (default ``min(cores, 4)``), with ``delivery_worker``'s 410 rule run in this process.

    One process is the worker itself, in the caller's process: on a one-core server a
    child would add its memory and a hand-off, and could not run in parallel.  ``spawner``
    (``serve``'s layout) forks the children from the supervisor's image instead of starting
    interpreters (``bridge.federation.delivery.forkserver``).
    """
    if not delivery_children(config):
        return delivery_worker(config, db, actor_keys, poll_interval=poll_interval)

    def gone(inbox_url: str) -> None:
        followers.remove_by_inbox(db, inbox_url)

    options = {} if poll_interval is None else {"poll_interval": poll_interval}
    # On demand: children start when a row is due and exit after IDLE_EXIT s of nothing.
    return delivery.DeliveryPool.from_config(
        config, db, on_gone=gone, idle_exit=IDLE_EXIT, spawner=spawner, **options
    )


def delivery_children(config: SiteConfig) -> bool:
    """Whether the daemon delivers from child processes (``delivery_pool``)."""
    return (config.delivery_processes or default_processes()) > 1


def inbox_handlers() -> dict[str, inbox.Handler]:
    """The inbox's dispatch table: follows and blocks, plus the conversation hooks
    (replies, reactions, edits and deletes become comments; FEP-044f quote requests)."""
    from bridge.conversations import fediverse, quotes

    hooks = {**fediverse.HOOKS, **quotes.HOOKS}
    return events.logged_handlers(inbox.default_handlers(hooks))


@dataclass
class PublishOutcome:
    report: outbox.PublishReport
    stats: delivery.DeliveryStats | None
    """What this process delivered; None when a running daemon delivers the queue."""


async def resolve_mentions(config: SiteConfig, posts: list[Post]) -> tuple[int, list[str]]:
    """Resolve the ``@user@host`` mentions of ``posts`` into the cache the build reads
    (``bridge.federation.mention_resolver``): how many changed, and one warning per
    handle that could not be resolved."""
    db = Database(config.db_path)
    key_store.ensure(config.state_dir)
    ctx = build_context(config, db, key_store.open_lazy(config.state_dir))
    try:
        return await mention_resolver.resolve(ctx, posts)
    finally:
        await ctx.fetcher.aclose()
        db.close()


async def publish_and_deliver(
    config: SiteConfig,
    posts: list[Post],
    *,
    send_webmentions: bool = True,
    dry_run: bool = False,
) -> PublishOutcome:
    """Queue the publish diff for ``posts`` (already built), then deliver the queue here
    unless a daemon runs; delivery ends when only retries scheduled for later remain.

    With ``dry_run`` nothing is queued, recorded or sent: ``report.planned`` lists what
    would be."""
    db = Database(config.db_path)
    key_store.ensure(config.state_dir)
    actor_keys = key_store.open_lazy(config.state_dir)  # parsed if something is signed
    ctx = build_context(config, db, actor_keys)
    try:
        from bridge.conversations.post_mentions import PostWebmentions

        mentions = PostWebmentions(ctx) if send_webmentions and not dry_run else None
        report = await outbox.publish(ctx, posts, webmentions=mentions, dry_run=dry_run)
        if dry_run or DaemonLock.held(lock_path(config)):
            return PublishOutcome(report, None)
        worker = delivery_worker(config, db, actor_keys)
        worker.recover()
        return PublishOutcome(report, await worker.run_until_idle())
    finally:
        await ctx.fetcher.aclose()
        db.close()
