"""The preview server: the site built for the address it is served at, and nothing else.

``indiebridge serve`` runs this instead of the daemon when :func:`bridge.site.preview.mode`
says preview (see that module for the rule).  It serves the preview folder with the same
content types and content negotiation as the daemon, and with ``--watch`` rebuilds on
save and reloads open tabs.  It never federates: it opens no database, starts no delivery
worker, and answers the inbox and Webmention endpoints with 403, so no Follow is ever
accepted and nothing is sent on behalf of a preview actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from bridge.config import SiteConfig
from bridge.daemon.public_site import content_type_for, wants_activitypub
from bridge.daemon.static_file import file_response
from bridge.site import preview

Echo = Callable[[str], None]


def create_preview_app(
    config: SiteConfig,
    *,
    watch: bool = False,
    drafts: bool = False,
    echo: Echo = print,
    warned: Iterable[str] = (),
) -> Starlette:
    """The ASGI app of a preview; ``config`` is already the preview's (``preview_config``).
    ``warned``: the warnings of the build ``serve`` printed before, not printed again."""
    from bridge.daemon.build_report import terminal_reporter
    from bridge.daemon.livereload import ReloadHub, end_streams_on_exit, live_reload_routes
    from bridge.daemon.watch import SiteWatcher

    hub = ReloadHub() if watch else None
    routes: list[Route] = live_reload_routes(hub) if hub is not None else []
    refuse = partial(_refuse, config)
    routes += [
        Route("/inbox", refuse, methods=["POST"]),
        Route("/ap/inbox", refuse, methods=["POST"]),
        Route("/webmention", refuse, methods=["POST"]),
        Route("/{path:path}", partial(_static, config), methods=["GET", "HEAD"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if hub is None:
            yield
            return
        watcher = SiteWatcher(
            config,
            terminal_reporter(hub, echo, config, warned=warned),
            on_publish=None,  # a preview never publishes, whatever auto_publish says
            live_reload=True,
            drafts=drafts,
            configure=lambda loaded: preview.preview_config(loaded, config.base_url),
            initial_build=False,  # `serve` built it just before
        )
        end_streams_on_exit(hub)
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()
            hub.close()

    return Starlette(routes=routes, lifespan=lifespan)


async def _refuse(config: SiteConfig, request: Request) -> Response:
    return PlainTextResponse(f"{preview.notice(config)} Nothing is received here.\n", 403)


async def _static(config: SiteConfig, request: Request) -> Response:
    root = config.output_dir
    path = request.url.path
    rel = path.lstrip("/")
    if ".." in rel.split("/") or "\\" in rel or "\0" in rel:
        return _not_found(config)
    if wants_activitypub(request):
        if path == "/":
            rel = "ap/actor.json"
        elif len(parts := path.strip("/").split("/")) == 2 and parts[0] == "posts":
            rel = f"ap/posts/{parts[1]}.json"
    target = root / rel
    if rel == "" or rel.endswith("/") or target.is_dir():
        if target.is_dir() and not path.endswith("/") and rel:
            return Response(status_code=301, headers={"Location": f"/{rel}/"})  # never //x/
        target = target / "index.html"
        rel = (rel.rstrip("/") + "/index.html").lstrip("/")
    if not target.is_file():
        return _not_found(config)
    try:  # length and body from one open, as a rebuild replaces files (static_file)
        return await file_response(
            target, media_type=content_type_for(rel), headers={"Cache-Control": "no-store"}
        )
    except OSError:
        return _not_found(config)


def _not_found(config: SiteConfig) -> Response:
    page = config.output_dir / "404.html"
    if page.is_file():
        return FileResponse(page, status_code=404, media_type="text/html; charset=utf-8")
    return PlainTextResponse("not found", 404)
