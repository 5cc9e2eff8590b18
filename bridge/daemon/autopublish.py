"""auto_publish: publish after each build that changed something (``auto_publish = true``).

With ``auto_publish = true`` in site.toml, ``on_publish(result)`` is called after each
successful build that changed something.  ``daemon_publisher`` (for ``serve --watch``)
schedules ``outbox.publish`` on the daemon's event loop, where its delivery worker sends
the queue; ``cli_publisher`` (for ``indiebridge watch``) publishes and delivers from the
watcher thread, like ``indiebridge publish``.  Both resolve the posts' ``@user@host``
mentions first; when that taught the cache something, the site is built again before
the publish (the daemon asks its rebuilder, whose build then publishes).
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import Future
from typing import TYPE_CHECKING

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.daemon.build_report import Echo, describe_error

if TYPE_CHECKING:
    from bridge.daemon.watch import OnPublish
    from bridge.federation.context import Context
    from bridge.site.build import BuildResult


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def daemon_publisher(
    ctx: Context, loop: asyncio.AbstractEventLoop, echo: Echo | None = None
) -> OnPublish:
    """``on_publish`` for the daemon: queue the publish diff on the daemon's loop.

    Publishes run one at a time; the daemon's delivery worker sends what they queue.
    """
    out = echo or _stderr
    lock = asyncio.Lock()

    async def run() -> None:
        from bridge.conversations.post_mentions import PostWebmentions
        from bridge.federation import mention_resolver, outbox
        from bridge.site import content

        async with lock:
            posts, _ = await asyncio.to_thread(content.load, ctx.config)
            changed, unresolved = await mention_resolver.resolve(ctx, posts)
            for line in unresolved:
                out(f"auto_publish: warning: {line}")
            if changed:  # new mention links: the rebuild asked for here publishes next
                for post in posts:
                    ctx.mark_dirty(post.slug)
                return
            report = await outbox.publish(ctx, posts, webmentions=PostWebmentions(ctx))
            out(f"auto_publish: {report.summary()}")

    def done(future: Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            out(f"auto_publish failed: {describe_error(exc)}")

    def hook(result: BuildResult) -> None:
        future = asyncio.run_coroutine_threadsafe(run(), loop)
        future.add_done_callback(done)

    return hook


def cli_publisher(config: SiteConfig, echo: Echo | None = None) -> OnPublish:
    """``on_publish`` for ``indiebridge watch``: publish, then deliver unless a daemon runs."""
    out = echo or _stderr

    def hook(result: BuildResult) -> None:
        from bridge.daemon import services
        from bridge.errors import BridgeError
        from bridge.site import build as site_build
        from bridge.site import content

        try:
            current = config_mod.load(config.site_dir)
            posts, _ = content.load(current)
            changed, unresolved = asyncio.run(services.resolve_mentions(current, posts))
            for line in unresolved:
                out(f"auto_publish: warning: {line}")
            if changed:  # link the newly resolved mentions before publishing
                posts = list(site_build.build(current).built_posts)
            outcome = asyncio.run(services.publish_and_deliver(current, posts))
        except BridgeError as exc:
            out(f"auto_publish failed: {describe_error(exc)}")
            return
        out(f"auto_publish: {outcome.report.summary()}")
        stats = outcome.stats
        if stats is not None:
            out(
                f"auto_publish: delivered {stats.delivered}, retrying later {stats.retrying}, "
                f"failed {stats.failed}"
            )

    return hook
