"""Bridge mode: follow an existing blog's feed and federate its entries.

For each ``[[bridge.feeds]]`` of site.toml the daemon polls the feed and turns its entries
into ``Post`` values, then into Articles (or Notes) whose ``url`` is the entry's link, so
fediverse readers land on the original blog, while the object ``id`` stays on this domain
(``/ap/bridge/<slug>.json``).  New entries go out as Create, changed ones as Update,
removed ones as Delete, built and signed exactly as ``outbox.publish`` does, and
webmentions go to the links of new or changed entries (from the entry's own page).

Which entries are announced (and where they live) is in ``bridge.daemon.bridged_entries``;
how an entry becomes an object, in ``bridge.daemon.bridged_objects``.

Polling politely
----------------
Each feed is fetched with ``SafeFetcher`` (private addresses refused unless
``allow_private_addresses``) with ``If-None-Match`` / ``If-Modified-Since`` from the last
answer, stored in the ``bridge_feeds`` table, every ``interval`` seconds (default 900).
An error (network, HTTP status, not a feed) doubles the wait each time, up to a day,
and waits at least what a ``Retry-After`` asks; the next success resets it.
"""

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bridge.config import BridgeFeed
from bridge.daemon.bridged_entries import FeedReport, ensure_schema, federate
from bridge.daemon.bridged_objects import object_id, sign
from bridge.db import Database
from bridge.errors import BridgeError
from bridge.federation import delivery
from bridge.federation.context import Context
from bridge.site import activities, importer

log = logging.getLogger("indiebridge.bridge")

AP_JSON = "application/activity+json"
MAX_BACKOFF = 24 * 3600.0


_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock(db: Database) -> asyncio.Lock:
    lock = _locks.get(db)
    if lock is None:
        lock = _locks[db] = asyncio.Lock()
    return lock


@dataclass
class BridgeReport:
    feeds: list[FeedReport] = field(default_factory=list)

    def _all(self, name: str) -> list[str]:
        return [slug for f in self.feeds for slug in getattr(f, name)]

    @property
    def created(self) -> list[str]:
        return self._all("created")

    @property
    def updated(self) -> list[str]:
        return self._all("updated")

    @property
    def deleted(self) -> list[str]:
        return self._all("deleted")

    @property
    def recorded(self) -> list[str]:
        return self._all("recorded")

    @property
    def errors(self) -> list[str]:
        return [f"{f.url}: {f.error}" for f in self.feeds if f.status == "error"]

    def summary(self) -> str:
        text = (
            f"{len(self.feeds)} feed(s): {len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted, {len(self.recorded)} recorded; "
            f"{sum(f.queued for f in self.feeds)} deliveries queued"
        )
        if self.errors:
            text += f"; {len(self.errors)} error(s)"
        return text


# ---- fetching -------------------------------------------------------------------------------


class _Conditional(httpx.Auth):
    """Adds the conditional-GET validators (SafeFetcher takes extra headers only this way;
    like credentials, they are dropped when a redirect leaves the feed's origin)."""

    def __init__(self, etag: str, last_modified: str) -> None:
        self.etag = etag
        self.last_modified = last_modified

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.etag:
            request.headers["If-None-Match"] = self.etag
        if self.last_modified:
            request.headers["If-Modified-Since"] = self.last_modified
        yield request


def _state(db: Database, url: str) -> dict[str, Any]:
    row = db.one("SELECT * FROM bridge_feeds WHERE url = ?", (url,))
    if row is None:
        with db.tx() as con:
            con.execute("INSERT OR IGNORE INTO bridge_feeds(url) VALUES (?)", (url,))
        row = db.one("SELECT * FROM bridge_feeds WHERE url = ?", (url,))
    assert row is not None
    return dict(row)


def backoff(interval: float, failures: int) -> float:
    """Seconds to wait after ``failures`` errors in a row: doubling, at most a day."""
    return float(min(interval * 2 ** min(failures, 20), max(MAX_BACKOFF, interval)))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def poll_feed(ctx: Context, feed: BridgeFeed, *, now: float | None = None) -> FeedReport:
    """Fetch one feed (conditionally) and federate what changed; never raises for the
    feed's own faults: they are in the report and schedule a backoff."""
    ensure_schema(ctx.db)
    async with _lock(ctx.db):
        return await _poll_feed(ctx, feed, time.time() if now is None else now)


async def _poll_feed(ctx: Context, feed: BridgeFeed, moment: float) -> FeedReport:
    db = ctx.db
    state = _state(db, feed.url)
    report = FeedReport(url=feed.url)
    status: int | None = None
    retry_after: float | None = None
    try:
        page = await ctx.fetcher.get(
            feed.url,
            accept=importer.FEED_ACCEPT,
            auth=_Conditional(state["etag"], state["last_modified"]),
        )
        status = page.status
        if page.status == 304:
            report.status = "not-modified"
        elif not page.ok:
            retry_after = delivery.parse_retry_after(page.headers.get("retry-after"), moment)
            raise BridgeError(f"HTTP {page.status}")
        else:
            parsed = importer.parse_feed(page.body, url=page.url)
            await federate(ctx, feed, parsed, moment, report)
    except BridgeError as exc:
        failures = int(state["failures"]) + 1
        wait = max(backoff(feed.interval, failures), retry_after or 0.0)
        report.status, report.error = "error", _one_line(str(exc))
        report.next_poll = moment + wait
        log.warning("bridge: %s: %s (next try in %d s)", feed.url, report.error, wait)
        with db.tx() as con:
            con.execute(
                "UPDATE bridge_feeds SET failures = ?, next_poll = ?, last_status = ?, "
                "last_error = ?, last_polled = ? WHERE url = ?",
                (failures, report.next_poll, status, report.error, moment, feed.url),
            )
        return report
    report.next_poll = moment + feed.interval
    etag = state["etag"]
    modified = state["last_modified"]
    if report.status != "not-modified":
        etag = str(page.headers.get("etag") or "")
        modified = str(page.headers.get("last-modified") or "")
    with db.tx() as con:
        con.execute(
            "UPDATE bridge_feeds SET etag = ?, last_modified = ?, failures = 0, next_poll = ?, "
            "last_status = ?, last_error = '', last_polled = ? WHERE url = ?",
            (etag, modified, report.next_poll, status, moment, feed.url),
        )
    return report


# ---- the daemon's side ----------------------------------------------------------------------


async def poll_once(ctx: Context) -> BridgeReport:
    """Poll every configured feed now, whatever its schedule (validators still apply)."""
    report = BridgeReport()
    for feed in ctx.config.bridge_feeds:
        report.feeds.append(await poll_feed(ctx, feed))
    return report


async def run_feed_bridge(ctx: Context, stop: asyncio.Event) -> None:
    """Poll each feed when it is due until ``stop`` is set (a lifespan task)."""
    feeds = ctx.config.bridge_feeds
    if not feeds:
        return
    ensure_schema(ctx.db)
    while not stop.is_set():
        now = time.time()
        for feed in feeds:
            if stop.is_set():
                return
            if float(_state(ctx.db, feed.url)["next_poll"]) <= now:
                try:
                    result = await poll_feed(ctx, feed)
                except Exception:  # a bug must not end the bridge; the feed is retried
                    log.exception("bridge: polling %s failed", feed.url)
                    continue
                if result.created or result.updated or result.deleted:
                    log.warning(
                        "bridge: %s: %d new, %d updated, %d deleted",
                        feed.url,
                        len(result.created),
                        len(result.updated),
                        len(result.deleted),
                    )
        due = min(float(_state(ctx.db, f.url)["next_poll"]) for f in feeds)
        wait = min(max(due - time.time(), 0.05), 60.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


def routes(ctx: Context) -> list[Route]:
    """``/ap/bridge/<slug>.json`` and ``.../create.json``; mount before the catch-all."""

    def find(slug: str) -> dict[str, Any] | None:
        ensure_schema(ctx.db)
        row = ctx.db.one("SELECT * FROM bridge_entries WHERE slug = ?", (slug,))
        return dict(row) if row is not None else None

    headers = {"Access-Control-Allow-Origin": "*"}

    async def document(request: Request) -> Response:
        row = find(str(request.path_params["slug"]))
        if row is None:
            return PlainTextResponse("not found", 404)
        if row["state"] != "live":
            tomb = activities.tombstone(
                object_id(ctx.config, row["slug"]),
                row["as_type"],
                dt.datetime.fromtimestamp(row["updated"], dt.UTC),
            )
            return JSONResponse(tomb, status_code=410, media_type=AP_JSON, headers=headers)
        return JSONResponse(json.loads(row["object"]), media_type=AP_JSON, headers=headers)

    async def create(request: Request) -> Response:
        row = find(str(request.path_params["slug"]))
        if row is None or row["state"] != "live" or not row["federated"]:
            return PlainTextResponse("not found", 404)
        obj = json.loads(row["object"])
        moment = dt.datetime.fromtimestamp(row["published"], dt.UTC)
        activity = sign(ctx, activities.create(ctx.config, obj), moment)
        return JSONResponse(activity, media_type=AP_JSON, headers=headers)

    return [
        Route("/ap/bridge/{slug}.json", document, methods=["GET", "HEAD"]),
        Route("/ap/bridge/{slug}/create.json", create, methods=["GET", "HEAD"]),
    ]
