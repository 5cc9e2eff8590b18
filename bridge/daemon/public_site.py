"""The daemon's GET routes: the built ``public/`` folder and the two live documents.

* ``GET /.well-known/webfinger?resource=`` — dynamic: our acct or actor URL, else 404;
  400 for a missing or malformed ``resource`` (RFC 7033 section 4.2);
* ``GET /ap/followers.json`` — the live follower count (and its pages);
* ``GET`` anything else — the built ``public/`` folder, with the ActivityPub content types
  and content negotiation: a post's (or the home page's) HTML URL asked for with
  ``Accept: application/activity+json`` or ``application/ld+json`` returns the JSON
  document; a deleted post's id answers 410 with a Tombstone; a post's unwritten empty
  collection is answered (``bridge.daemon.collections``); the build's ``_redirects``
  answer 301.

The content types and the negotiation rule are shared with the preview server
(``bridge.daemon.preview``).  ``bridge.daemon.app`` routes these to a ``PublicSite``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from bridge.config import SiteConfig
from bridge.daemon.collections import empty_collection
from bridge.daemon.static_file import file_response
from bridge.db import Database
from bridge.federation import followers, outbox, published
from bridge.federation.context import Context
from bridge.site import collections, webfinger
from bridge.site.gone import live_slugs
from bridge.site.importing.redirects import read_netlify

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


class PublicSite:
    """What the daemon answers to ``GET`` and ``HEAD``; it keeps the build's redirect rules
    between requests."""

    def __init__(self, config: SiteConfig, db: Database, ctx: Context) -> None:
        self.config = config
        self.db = db
        self.ctx = ctx
        self._redirect_cache: tuple[int, dict[str, str]] = (-1, {})

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
            url = self.config.base_url + path
            gone = published.gone(self.config, self.db, url, live_slugs(self.config))
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


MAX_PATH = 2048
MAX_NAME_BYTES = 255  # what a file name may hold on Linux file systems (NAME_MAX)


def _path_fits(path: str, parts: list[str]) -> bool:
    """A path no file of ours can have is answered 404 before it reaches the file system,
    where a 5,000-character name raises ENAMETOOLONG."""
    return len(path) <= MAX_PATH and all(len(p.encode()) <= MAX_NAME_BYTES for p in parts)
