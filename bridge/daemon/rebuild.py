"""The daemon's rebuilds: one owner, so two builds never run at once.

Three things ask the running daemon to rebuild the site:

* a comment, reaction or webmention changed (``ctx.mark_dirty(slug)``, given to the
  ``Context`` when it is built: ``Rebuilder.mark_dirty``);
* moderation done by a CLI command in another process (``site_changes.ChangePoller``);
* in ``serve --watch``, a saved post, template or ``site.toml``.

Without ``--watch``, ``Rebuilder.run`` builds in a thread: a reply's page at once, likes
and boosts coalesced into one full build every ``FULL_EVERY`` seconds at most (see
``Rebuilder``).  In ``serve``'s production layout that thread is in a process of its own
(``bridge.daemon.rebuild_process``), and the background process's ``Rebuilder`` only
forwards the requests to it (``forward_to``).  With ``--watch`` the
``SiteWatcher`` already builds on saves, so ``watch_with`` hands the requests to it
instead (``start_daemon_watcher`` sets that up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from bridge.config import SiteConfig
from bridge.daemon import events
from bridge.daemon.autopublish import daemon_publisher
from bridge.daemon.build_report import Echo, terminal_reporter
from bridge.daemon.livereload import ReloadHub, end_streams_on_exit
from bridge.site.comments import CommentStore

if TYPE_CHECKING:
    from bridge.daemon.watch import SiteWatcher
    from bridge.federation.context import Context
    from bridge.site.build import BuildResult

log = logging.getLogger("indiebridge.daemon")


RETRY = 0.05
"""Seconds between writes of what did not fit in the rebuild process's pipe."""
FULL_EVERY = 2.0
"""Seconds between full rebuilds while comments keep changing: likes and boosts wait at most
this long (plus a build) to show; a reply does not wait for it."""


class BuildPipe(Protocol):
    """Where ``forward_to`` writes what changed (``rebuild_process.BuildPipe``)."""

    def send(self, kind: str, slug: str = "") -> bool: ...

    def hold(self, kind: str, slug: str = "") -> None: ...

    def flush(self) -> bool: ...


class Rebuilder:
    """Rebuilds in a thread: a reply's page at once, a burst of likes coalesced.

    Each build either reads every post's current comments (a full build) or, when a reply
    (any comment readers see first: ``CommentStore`` notes it) is waiting and a full build
    ran less than ``FULL_EVERY`` seconds ago, only the current comments of the posts with
    such a change; every other post keeps the comments of its last build, so only the
    reply's pages are rendered again (``comment_cache``).  A full build starts ``delay``
    seconds after the first request, and no sooner than ``FULL_EVERY`` after the previous
    full build: a flood of likes becomes one build every ``FULL_EVERY`` seconds, and a
    reply arriving meanwhile is built without waiting for it.  Under a flood, builds are at
    least ``gap`` seconds apart (``delay`` unless given), so the inbox's processing gets
    the process between them; an idle daemon builds a reply's page at once.
    """

    def __init__(
        self,
        config: SiteConfig,
        delay: float = 0.3,
        *,
        drafts: bool = False,
        full_every: float = FULL_EVERY,
        gap: float | None = None,
    ) -> None:
        self.config = config
        self.delay = delay
        self.gap = delay if gap is None else gap
        self.drafts = drafts
        self.full_every = full_every
        self.event = asyncio.Event()
        self.dirty: set[str] = set()
        self.comments = CommentStore(config.content_dir)
        self._full_wanted = False  # a request() without a post: moderation, a watched save
        self.last_full = -math.inf  # event-loop time the last full build started
        self.last_end = -math.inf  # and the last build of either kind ended
        self._watcher: SiteWatcher | None = None
        self._pipe: BuildPipe | None = None

    def watch_with(self, watcher: SiteWatcher) -> None:
        """From now on the watcher builds (``serve --watch``)."""
        self._watcher = watcher

    def forward_to(self, pipe: BuildPipe) -> None:
        """From now on another process builds (``bridge.daemon.rebuild_process``): what
        changed is written to ``pipe`` (a reply at once, by the thread that wrote it; a
        post's other changes once the event loop's current round of rows has run), and
        ``run`` only writes what is held or did not fit at once.  Call from the event
        loop's thread (``mark_dirty`` sets ``event``)."""
        self._pipe = pipe
        self.comments.cache.forward = lambda slug: self._send("u", slug)

    def mark_dirty(self, slug: str) -> None:
        """A comment on post ``slug`` changed: rebuild (the ``Context`` hook)."""
        if self._pipe is not None:  # likes wait anyway: one write for a burst (``run``)
            self._pipe.hold("d", slug)
            self.event.set()
            return
        self.dirty.add(slug)
        self._wake()

    def request(self) -> None:
        """Ask for a full rebuild soon; safe to call many times."""
        if self._pipe is not None:
            self._send("f")
            return
        self._full_wanted = True
        self._wake()

    def _send(self, kind: str, slug: str = "") -> None:
        assert self._pipe is not None
        if not self._pipe.send(kind, slug):
            self.event.set()  # ``run`` writes the rest (from the event loop's thread only)

    def _wake(self) -> None:
        if self._watcher is not None:
            self._watcher.request_build()
        else:
            self.event.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self._pipe is not None:
            await self._forward(self._pipe, stop)
            return
        loop = asyncio.get_running_loop()

        # A reply written by another thread (a batch of comment files) wakes this loop.
        def wake() -> None:
            loop.call_soon_threadsafe(self.event.set)

        self.comments.cache.on_urgent = wake
        try:
            await self._run(loop, stop)
        finally:
            self.comments.cache.on_urgent = None

    async def _forward(self, pipe: BuildPipe, stop: asyncio.Event) -> None:
        """Write the lines held or that did not fit in the pipe, until they do."""
        while not stop.is_set():
            await _first(self.event.wait(), stop.wait())
            self.event.clear()
            while not pipe.flush() and not stop.is_set():
                await asyncio.sleep(RETRY)

    async def _run(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _first(self.event.wait(), stop.wait())
            if stop.is_set():
                return
            # Likes wait for the next full build; a reply arriving meanwhile ends the wait.
            first = loop.time()
            while not self.comments.cache.urgent_slugs():
                full_at = max(first + self.delay, self.last_full + self.full_every)
                if loop.time() >= full_at:
                    break
                self.event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(self.event.wait(), stop.wait()), full_at - loop.time()
                    )
                if stop.is_set():
                    return
            # Back-to-back builds would leave the inbox no time: ``gap`` after the last.
            await asyncio.sleep(max(0.0, self.last_end + self.gap - loop.time()))
            self.event.clear()
            urgent = self.comments.cache.urgent_slugs()
            started = loop.time()
            full = self._full_wanted or not urgent or started - self.last_full >= self.full_every
            refresh = None if full else urgent
            if full:
                self._full_wanted = False
                slugs, self.dirty = sorted(self.dirty), set()
                self.last_full = started
            else:
                slugs = sorted(urgent)
                self.dirty -= urgent
            try:
                result, cpu = await asyncio.to_thread(self._build, refresh)
            except Exception as exc:  # noqa: BLE001 - a broken build must not stop the daemon
                log.error("rebuild failed: %s", exc)
                continue
            finally:
                self.last_end = loop.time()
                if self.dirty or self._full_wanted or self.comments.cache.urgent_slugs():
                    self.event.set()  # what changed meanwhile, and the likes held back
            because = f" (comments on {', '.join(slugs)})" if slugs else ""
            events.event(
                "rebuild",
                f"rebuild: {len(result.changed)} page(s) changed in {result.seconds:.2f}s{because}",
                pages=len(result.changed),
                seconds=round(result.seconds, 3),
                cpu_seconds=round(cpu, 3),
                posts=slugs,
                full=full,
            )

    def _build(self, refresh: frozenset[str] | None) -> tuple[BuildResult, float]:
        """The build's result and the CPU seconds its thread used, not counting forked
        render workers (the ``rebuild`` event's ``cpu_seconds``: a build that took longer
        waited for a core or for the disk)."""
        from bridge.site import build as site

        cpu = time.thread_time()
        with self.comments.refreshing(refresh):
            result = site.build(self.config, drafts=self.drafts)
        return result, time.thread_time() - cpu


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def start_daemon_watcher(
    ctx: Context, hub: ReloadHub, rebuilder: Rebuilder, echo: Echo | None = None
) -> SiteWatcher:
    """Start a watcher for ``serve --watch``; call from the daemon's running event loop.

    Builds include the live-reload script, outcomes go to the terminal and to ``hub``,
    ``auto_publish`` publishes through the daemon, rebuilds the daemon asks for (a new
    comment) go through the watcher so two builds never run at once, and Ctrl+C ends the
    event streams so the server does not wait for open tabs.
    """
    from bridge.daemon.watch import SiteWatcher  # here: watchdog only with --watch

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
