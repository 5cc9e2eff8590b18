"""The daemon's rebuilds: one owner, so two builds never run at once.

Three things ask the running daemon to rebuild the site:

* a comment, reaction or webmention changed (``ctx.mark_dirty(slug)``, given to the
  ``Context`` when it is built: ``Rebuilder.mark_dirty``);
* moderation done by a CLI command in another process (``site_changes.ChangePoller``);
* in ``serve --watch``, a saved post, template or ``site.toml``.

Without ``--watch``, ``Rebuilder.run`` debounces requests (a burst becomes one build,
``delay`` seconds after the first) and builds in a thread.  With ``--watch`` the
``SiteWatcher`` already builds on saves, so ``watch_with`` hands the requests to it
instead (``start_daemon_watcher`` sets that up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bridge.config import SiteConfig
from bridge.daemon import events
from bridge.daemon.autopublish import daemon_publisher
from bridge.daemon.build_report import Echo, terminal_reporter
from bridge.daemon.livereload import ReloadHub, end_streams_on_exit
from bridge.daemon.watch import SiteWatcher

if TYPE_CHECKING:
    from bridge.federation.context import Context

log = logging.getLogger("indiebridge.daemon")


class Rebuilder:
    """Debounced rebuilds: a burst of changes becomes one build, run in a thread."""

    def __init__(self, config: SiteConfig, delay: float = 0.3, *, drafts: bool = False) -> None:
        self.config = config
        self.delay = delay
        self.drafts = drafts
        self.event = asyncio.Event()
        self.dirty: set[str] = set()
        self._watcher: SiteWatcher | None = None

    def watch_with(self, watcher: SiteWatcher) -> None:
        """From now on the watcher builds (``serve --watch``)."""
        self._watcher = watcher

    def mark_dirty(self, slug: str) -> None:
        """A comment on post ``slug`` changed: rebuild (the ``Context`` hook)."""
        self.dirty.add(slug)
        self.request()

    def request(self) -> None:
        """Ask for a rebuild soon; safe to call many times."""
        if self._watcher is not None:
            self._watcher.request_build()
        else:
            self.event.set()

    async def run(self, stop: asyncio.Event) -> None:
        from bridge.site import build as site

        while not stop.is_set():
            waiter = asyncio.ensure_future(self.event.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if stop.is_set():
                return
            await asyncio.sleep(self.delay)
            self.event.clear()
            slugs, self.dirty = sorted(self.dirty), set()
            try:
                result = await asyncio.to_thread(site.build, self.config, drafts=self.drafts)
            except Exception as exc:  # noqa: BLE001 - a broken build must not stop the daemon
                log.error("rebuild failed: %s", exc)
                continue
            because = f" (comments on {', '.join(slugs)})" if slugs else ""
            events.event(
                "rebuild",
                f"rebuild: {len(result.changed)} page(s) changed in {result.seconds:.2f}s{because}",
                pages=len(result.changed),
                seconds=round(result.seconds, 3),
                posts=slugs,
            )


def start_daemon_watcher(
    ctx: Context, hub: ReloadHub, rebuilder: Rebuilder, echo: Echo | None = None
) -> SiteWatcher:
    """Start a watcher for ``serve --watch``; call from the daemon's running event loop.

    Builds include the live-reload script, outcomes go to the terminal and to ``hub``,
    ``auto_publish`` publishes through the daemon, rebuilds the daemon asks for (a new
    comment) go through the watcher so two builds never run at once, and Ctrl+C ends the
    event streams so the server does not wait for open tabs.
    """
    loop = asyncio.get_running_loop()
    watcher = SiteWatcher(
        ctx.config,
        terminal_reporter(hub, echo, ctx.config),
        on_publish=daemon_publisher(ctx, loop, echo),
        live_reload=True,
        drafts=rebuilder.drafts,
    )
    rebuilder.watch_with(watcher)
    end_streams_on_exit(hub)
    return watcher.start()
