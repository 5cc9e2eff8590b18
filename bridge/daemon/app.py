"""The daemon: one ASGI app serving the site, its inbox and its background workers.

Routes (the URL layout is in ``bridge.config``):

* ``POST /inbox`` (shared) and ``POST /ap/inbox`` (the actor's) — ``bridge.inbox.receive``;
* ``POST /webmention`` — ``bridge.webmentions.receive``;
* ``GET /.well-known/webfinger``, ``GET /ap/followers.json`` and ``GET`` anything else
  (the built ``public/`` folder, with content negotiation) — ``bridge.daemon.public_site``.

Background tasks (started by the lifespan): the delivery worker, the inbox processor,
webmention verification, a debounced rebuild of the site when comments change, and a
poller that rebuilds after moderation done by CLI commands (``site_changes``).  The
services are built by the composition root, ``bridge.daemon.services``.

In ``serve``'s production layout (``bridge.daemon.processes``) each HTTP worker's
``Daemon`` is given ``notify`` and runs no background task: what it stores wakes the
background process, whose ``Daemon`` runs them all (``start`` without an HTTP server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import keys
from bridge.config import SiteConfig
from bridge.daemon import events, services
from bridge.daemon.livereload import ReloadHub, live_reload_routes
from bridge.daemon.lock import DaemonLock, lock_path
from bridge.daemon.public_site import PublicSite
from bridge.daemon.rebuild import Rebuilder, start_daemon_watcher
from bridge.daemon.site_changes import ChangePoller
from bridge.db import Database
from bridge.federation import inbox
from bridge.federation.context import Context

if TYPE_CHECKING:
    from bridge.daemon.watch import SiteWatcher  # watchdog: imported only with --watch
    from bridge.federation.delivery.forkserver import ForkClient

log = logging.getLogger("indiebridge.daemon")


class Daemon:
    """Holds the context and the background tasks of one running site."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        ctx: Context | None = None,
        poll_interval: float = 1.0,
        watch: bool = False,
        drafts: bool = False,
        notify: Callable[[str], None] | None = None,
        workers: int = 1,
        spawner: ForkClient | None = None,
    ) -> None:
        self.config = config
        # An HTTP worker of several (``bridge.daemon.processes``) only answers requests and
        # wakes the background process through ``notify``; without it, this process runs
        # the background workers too.
        self.notify = notify
        self.db = Database(config.db_path)
        self.keys = keys.load(config.state_dir)
        self.poll_interval = poll_interval
        self.rebuilder = Rebuilder(config, drafts=drafts)  # serve --drafts: rebuilds keep them
        # rows queued by `publish` in another process are found by polling
        self.worker = services.delivery_pool(
            config, self.db, self.keys, poll_interval=poll_interval, spawner=spawner
        )
        self.ctx = ctx or services.build_context(
            config,
            self.db,
            self.keys,
            on_queued=self.worker.wake if notify is None else lambda: notify("d"),
            mark_dirty=self.rebuilder.mark_dirty if notify is None else lambda _: notify("b"),
            comments=events.LoggedCommentStore(config.content_dir),
        )
        self.changes = ChangePoller(self.db, self.rebuilder.request)
        self.gave_up = events.DeliveryWatch(self.db)
        self.limiter = inbox.RateLimiter.shared_by(workers)
        self.writer = inbox.InboxWriter(self.db)
        self.inbox_event = asyncio.Event()
        self.webmention_event = asyncio.Event()
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.lock = DaemonLock(lock_path(config))
        self.hub: ReloadHub | None = ReloadHub() if watch else None
        self.watcher: SiteWatcher | None = None
        self.processor = inbox.InboxProcessor(self.ctx, services.inbox_handlers())
        self.site = PublicSite(config, self.db, self.ctx)  # the GET routes

    # ---- lifecycle ----------------------------------------------------------------

    def wake(self, kinds: set[str]) -> None:
        """Another process stored something (``processes.WakePipe``): look at it now."""
        if "i" in kinds:
            self.inbox_event.set()
        if "w" in kinds:
            self.webmention_event.set()
        if "d" in kinds:
            self.worker.wake()
        if "b" in kinds:
            self.rebuilder.request()

    async def start(self) -> None:
        if self.notify is not None:
            return  # an HTTP worker: the background process runs the workers
        from bridge.site.output_switch import recover_output  # not the build: see preload

        # A build killed mid-switch (e.g. with the previous daemon) is completed first.
        try:
            recover_output(self.config)
        except OSError as exc:
            log.error("could not complete an interrupted build: %s", exc)
        if not self.lock.acquire():
            log.warning("another daemon holds %s; this one will not deliver", self.lock.path)
        self.worker.recover()
        self.stop.clear()
        self.tasks = [
            asyncio.create_task(self.worker.run_forever(self.stop), name="delivery"),
            asyncio.create_task(self._loop(self.inbox_event, self._process_inbox), name="inbox"),
            asyncio.create_task(
                self._loop(self.webmention_event, self._process_webmentions), name="webmentions"
            ),
            asyncio.create_task(self.rebuilder.run(self.stop), name="rebuild"),
            asyncio.create_task(self._watch(), name="site-changes"),
        ]
        if self.config.bridge_feeds:
            from bridge.daemon import feedbridge

            self.tasks.append(
                asyncio.create_task(
                    feedbridge.run_feed_bridge(self.ctx, self.stop), name="feedbridge"
                )
            )
        if self.hub is not None:
            # Watch mode: saves and comment changes rebuild through one watcher, open tabs
            # reload, and auto_publish runs after each good build.
            self.watcher = start_daemon_watcher(self.ctx, self.hub, self.rebuilder)

    async def shutdown(self) -> None:
        await self.writer.close()
        if self.notify is not None:
            await self.ctx.fetcher.aclose()
            self.db.close()
            return
        self.stop.set()
        if self.watcher is not None:
            await asyncio.to_thread(self.watcher.stop)
        if self.hub is not None:
            self.hub.close()
        self.inbox_event.set()
        self.webmention_event.set()
        self.worker.wake()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        await self.ctx.fetcher.aclose()
        self.lock.release()
        self.db.close()

    async def _loop(self, event: asyncio.Event, step: Callable[[], Awaitable[int]]) -> None:
        while not self.stop.is_set():
            try:
                busy = await step()
            except Exception as exc:
                log.exception("background step failed: %s", exc)
                busy = 0
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=self.poll_interval)
            event.clear()

    async def _watch(self) -> None:
        """Every ``poll_interval``: moderation from the CLI, deliveries that gave up."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=self.poll_interval)
            try:
                self.changes.poll()
                self.gave_up.check()
            except Exception as exc:
                log.exception("watching the database failed: %s", exc)

    async def _process_inbox(self) -> int:
        return await self.processor.process_pending()

    async def _process_webmentions(self) -> int:
        from bridge.conversations import webmentions

        waiting = events.pending_webmentions(self.db)
        count: int = await webmentions.process_pending(self.ctx)
        events.log_webmentions(self.db, waiting)
        return count

    # ---- HTTP handlers --------------------------------------------------------------

    async def inbox_post(self, request: Request) -> Response:
        return await inbox.receive(
            self.ctx, request, self.limiter, self._stored("i", self.inbox_event), self.writer
        )

    async def webmention_post(self, request: Request) -> Response:
        from bridge.conversations import webmentions

        notify = self._stored("w", self.webmention_event)
        response: Response = await webmentions.receive(self.ctx, request, notify)
        return response

    def _stored(self, kind: str, event: asyncio.Event) -> Callable[[], None]:
        """What wakes the worker for ``kind``: here, or in the background process."""
        notify = self.notify
        return event.set if notify is None else lambda: notify(kind)

    def routes(self) -> list[Route]:
        extra: list[Route] = []
        if self.hub is not None:
            extra += live_reload_routes(self.hub)
        if self.config.bridge_feeds:
            from bridge.daemon import feedbridge

            extra += feedbridge.routes(self.ctx)
        from bridge.conversations import quotes

        extra += quotes.routes(self.ctx)  # FEP-044f stamps
        from bridge.federation import remote_interaction

        extra += remote_interaction.routes(self.ctx)  # /interact: the one-step form
        return [
            *extra,
            Route("/.well-known/webfinger", self.site.webfinger, methods=["GET", "HEAD"]),
            Route("/inbox", self.inbox_post, methods=["POST"]),
            Route("/ap/inbox", self.inbox_post, methods=["POST"]),
            Route("/webmention", self.webmention_post, methods=["POST"]),
            Route("/ap/followers.json", self.site.followers_collection, methods=["GET", "HEAD"]),
            Route("/{path:path}", self.site.static, methods=["GET", "HEAD"]),
        ]


INBOX_PATHS = frozenset(("/inbox", "/ap/inbox"))


class DaemonApp(Starlette):
    """Starlette, with ``POST /inbox`` and ``POST /ap/inbox`` answered before its
    middleware and router.

    Under a flood of activities those layers (one coroutine each, plus route matching)
    were about a sixth of an HTTP worker's CPU; the inbox needs none of them.  What they
    would give it is kept: an exception is logged and answered 500 with nothing stored.
    """

    inbox: Callable[[Request], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.inbox
        if (
            handler is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in INBOX_PATHS
        ):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        try:
            response = await handler(Request(scope, receive, send))
        except Exception as exc:  # the same as Starlette's ServerErrorMiddleware
            log.exception("inbox request failed: %s", exc)
            response = PlainTextResponse("Internal Server Error", status_code=500)
        await response(scope, receive, send)


def create_app(
    config: SiteConfig,
    *,
    daemon: Daemon | None = None,
    watch: bool = False,
    drafts: bool = False,
    notify: Callable[[str], None] | None = None,
    workers: int = 1,
) -> DaemonApp:
    """The ASGI app; its lifespan starts and stops the background workers (none in an
    HTTP worker, which is given ``notify``: ``bridge.daemon.processes``)."""
    holder: dict[str, Daemon] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        d = holder["daemon"]
        await d.start()
        try:
            yield
        finally:
            await d.shutdown()

    d = daemon or Daemon(config, watch=watch, drafts=drafts, notify=notify, workers=workers)
    holder["daemon"] = d
    app = DaemonApp(routes=d.routes(), lifespan=lifespan)
    app.inbox = d.inbox_post
    app.state.daemon = d
    return app
