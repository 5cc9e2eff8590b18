"""The daemon: one ASGI app serving the site, its inbox and its background workers.

Routes (the URL layout is in ``bridge.config``):

* ``GET /.well-known/webfinger?resource=`` — dynamic: our acct or actor URL, else 404;
  400 for a missing or malformed ``resource`` (RFC 7033 section 4.2);
* ``POST /inbox`` (shared) and ``POST /ap/inbox`` (the actor's) — ``bridge.inbox.receive``;
* ``POST /webmention`` — ``bridge.webmentions.receive``;
* ``GET /ap/followers.json`` — the live follower count;
* ``GET`` anything else — the built ``public/`` folder, with the ActivityPub content types
  and content negotiation: a post's (or the home page's) HTML URL asked for with
  ``Accept: application/activity+json`` or ``application/ld+json`` returns the JSON
  document; a deleted post's id answers 410 with a Tombstone.

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
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import keys
from bridge.config import SiteConfig
from bridge.daemon import events, services
from bridge.daemon.collections import empty_collection
from bridge.daemon.livereload import ReloadHub, live_reload_routes
from bridge.daemon.lock import DaemonLock, lock_path
from bridge.daemon.rebuild import Rebuilder, start_daemon_watcher
from bridge.daemon.site_changes import ChangePoller
from bridge.daemon.static_file import file_response
from bridge.daemon.watch import SiteWatcher
from bridge.db import Database
from bridge.federation import followers, inbox, outbox, published
from bridge.federation.context import Context
from bridge.site import collections, webfinger
from bridge.site.importing.redirects import read_netlify

if TYPE_CHECKING:
    from bridge.federation.delivery.forkserver import ForkClient

log = logging.getLogger("indiebridge.daemon")

AP_JSON = "application/activity+json"
JRD = "application/jrd+json"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}


def wants_activitypub(request: Request) -> bool:
    """Mastodon's rule: an Accept naming activity+json or ld+json gets the JSON document."""
    accept = request.headers.get("accept", "").lower()
    return "application/activity+json" in accept or "application/ld+json" in accept


def content_type_for(rel: str) -> str:
    if rel.startswith("ap/") and rel.endswith(".json"):
        return AP_JSON
    if rel == ".well-known/webfinger":
        return JRD
    if rel == ".well-known/host-meta":
        return "application/xrd+xml; charset=utf-8"
    if rel == ".well-known/nodeinfo":
        return "application/json"
    if rel.startswith("nodeinfo/"):
        return 'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
    return CONTENT_TYPES.get(Path(rel).suffix.lower(), "application/octet-stream")


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
        self._redirect_cache: tuple[int, dict[str, str]] = (-1, {})
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
        from bridge.site import build as site

        # A build killed mid-switch (e.g. with the previous daemon) is completed first.
        try:
            site.recover_output(self.config)
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

    async def webfinger(self, request: Request) -> Response:
        headers = {"Access-Control-Allow-Origin": "*"}
        status, error = webfinger.resource_status(self.config, request.query_params.get("resource"))
        if status != 200:
            return JSONResponse({"error": error}, status, headers=headers)
        return JSONResponse(webfinger.jrd(self.config), media_type=JRD, headers=headers)

    async def followers_collection(self, request: Request) -> Response:
        total = followers.count(self.db)
        page = request.query_params.get("page", "")
        if not page:
            doc = collections.followers_collection(self.config, total, paged=True)
            return JSONResponse(doc, media_type=AP_JSON)
        size = collections.FOLLOWERS_PAGE_SIZE
        last = max(1, -(-total // size))
        # ASCII digits only ("²".isdigit() is true, int("²") fails), and no page past the
        # last: a 20-digit page number would overflow SQLite's OFFSET.
        if not (page.isascii() and page.isdigit()):
            return JSONResponse({"error": "page must be a positive integer"}, 400)
        if not 1 <= int(page[:12]) <= last:
            return JSONResponse({"error": f"page must be a number from 1 to {last}"}, 404)
        number = int(page)
        rows = self.db.query(
            "SELECT actor FROM followers WHERE state = 'accepted' ORDER BY created, actor "
            "LIMIT ? OFFSET ?",
            (size, (number - 1) * size),
        )
        doc = collections.followers_page(self.config, number, [r["actor"] for r in rows], total)
        return JSONResponse(doc, media_type=AP_JSON)

    async def static(self, request: Request) -> Response:
        root = self.config.output_dir
        path = request.url.path
        rel = path.lstrip("/")
        parts = rel.split("/")
        if ".." in parts or "\\" in rel or "\0" in rel or not _path_fits(path, parts):
            return self._not_found()
        if request.url.query:  # WordPress's /?p=123: a query redirect wins over the file
            moved = self._redirects().get(f"{path}?{request.url.query}")
            if moved is not None:
                return Response(status_code=301, headers={"Location": moved})
        if wants_activitypub(request):
            alt = self._activitypub_alternate(path)
            if alt is not None:
                rel = alt
        target = root / rel
        if rel == "" or rel.endswith("/") or target.is_dir():
            if target.is_dir() and not path.endswith("/") and rel:
                # Built from ``rel``, never from the raw path: ``//posts`` must not become
                # the protocol-relative (off-site) ``//posts/``.
                return Response(status_code=301, headers={"Location": f"/{rel}/"})
            target = target / "index.html"
            rel = (rel.rstrip("/") + "/index.html").lstrip("/")
        if not target.is_file():
            gone = published.gone(self.config, self.db, self.config.base_url + path, self._live())
            if gone is not None:
                if isinstance(gone.body, dict):
                    return JSONResponse(gone.body, status_code=410, media_type=gone.media_type)
                return Response(gone.body, status_code=410, media_type=gone.media_type)
            empty = empty_collection(self.config, rel)  # a post's collection with no items
            if empty is not None:
                cors = {"Access-Control-Allow-Origin": "*"}
                return JSONResponse(empty, media_type=AP_JSON, headers=cors)
            moved = self._redirects().get(path)
            if moved is not None:  # an imported post's old URL (bridge.site.importing.redirects)
                return Response(status_code=301, headers={"Location": moved})
            return self._not_found()
        headers = {}
        if rel.startswith((".well-known/", "ap/", "nodeinfo/")):
            headers["Access-Control-Allow-Origin"] = "*"
        if rel.endswith(".html"):
            headers["Vary"] = "Accept"
        try:  # length and body from one open, as a rebuild replaces files (static_file)
            return await file_response(target, media_type=content_type_for(rel), headers=headers)
        except OSError:  # replaced by nothing since the check: a post deleted meanwhile
            return self._not_found()

    def _activitypub_alternate(self, path: str) -> str | None:
        """The JSON file that answers for an HTML URL under content negotiation."""
        if path in ("/", ""):
            return "ap/actor.json"
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "posts":
            return outbox.live_object_path(self.ctx, parts[1])
        return None

    def _not_found(self) -> Response:
        """The theme's 404 page when the build wrote one, plain text otherwise."""
        page = self.config.output_dir / "404.html"
        if page.is_file():
            return FileResponse(page, status_code=404, media_type="text/html; charset=utf-8")
        return PlainTextResponse("not found", 404)

    def _redirects(self) -> dict[str, str]:
        """The build's ``_redirects`` 301 rules, read again only when the file changes."""
        rules = self.config.output_dir / "_redirects"
        try:
            stamp = rules.stat().st_mtime_ns
        except OSError:
            return {}
        if self._redirect_cache[0] != stamp:
            text = rules.read_text(encoding="utf-8", errors="replace")
            self._redirect_cache = (stamp, read_netlify(text))
        return self._redirect_cache[1]

    def _live(self) -> set[str]:
        """Slugs of the posts the output has now (a deleted post's page answers 410)."""
        posts = self.config.output_dir / "posts"
        return {p.name for p in posts.iterdir() if p.is_dir()} if posts.is_dir() else set()

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
            Route("/.well-known/webfinger", self.webfinger, methods=["GET", "HEAD"]),
            Route("/inbox", self.inbox_post, methods=["POST"]),
            Route("/ap/inbox", self.inbox_post, methods=["POST"]),
            Route("/webmention", self.webmention_post, methods=["POST"]),
            Route("/ap/followers.json", self.followers_collection, methods=["GET", "HEAD"]),
            Route("/{path:path}", self.static, methods=["GET", "HEAD"]),
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


MAX_PATH = 2048
MAX_NAME_BYTES = 255  # what a file name may hold on Linux file systems (NAME_MAX)


def _path_fits(path: str, parts: list[str]) -> bool:
    """A path no file of ours can have is answered 404 before it reaches the file system,
    where a 5,000-character name raises ENAMETOOLONG."""
    return len(path) <= MAX_PATH and all(len(p.encode()) <= MAX_NAME_BYTES for p in parts)
