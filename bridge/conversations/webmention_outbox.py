"""Webmentions this site sends: to every link of a published post, recorded in
``webmentions_out`` so ``indiebridge webmentions`` can show what each endpoint answered.

``send_for_post`` notifies every link of a post's HTML and every link an edit removed
(webmention.rocks Update 2), skipping links to this site (``is_own``).  The discovery and
the POST itself are ``webmention_client``'s; this module adds the site's rules, the
concurrency bound and the record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio

from bridge.conversations.webmention_client import SendResult, find_links, send_webmention
from bridge.db import Database, now
from bridge.federation.context import Context

__all__ = ["is_own", "list_sent", "record_sent", "send_all", "send_for_post"]

SEND_CONCURRENCY = 4


def is_own(ctx: Context, url: str) -> bool:
    """Whether ``url`` is a page of this site (or of its federation host)."""
    return ctx.config.local_path(url) is not None or (
        ctx.config.federation_url != ctx.config.base_url
        and (url + "/").startswith(ctx.config.federation_url + "/")
    )


def record_sent(db: Database, source: str, result: SendResult) -> None:
    with db.tx() as con:
        con.execute(
            "INSERT INTO webmentions_out(source, target, endpoint, status, location, error, sent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, target) DO UPDATE SET "
            "endpoint = excluded.endpoint, status = excluded.status, "
            "location = excluded.location, error = excluded.error, sent = excluded.sent",
            (
                source,
                result.target,
                result.endpoint,
                result.status,
                result.location,
                result.error or "",
                now(),
            ),
        )


async def send_all(ctx: Context, source: str, targets: list[str]) -> list[SendResult]:
    """Send from ``source`` to each target (at most ``SEND_CONCURRENCY`` at once), record
    each result, and return them in the order of ``targets``."""
    results: dict[int, SendResult] = {}
    limiter = anyio.Semaphore(SEND_CONCURRENCY)

    async def one(i: int, target: str) -> None:
        async with limiter:
            result = await send_webmention(ctx.fetcher, source, target)
        record_sent(ctx.db, source, result)
        results[i] = result

    async with anyio.create_task_group() as tg:
        for i, target in enumerate(targets):
            tg.start_soon(one, i, target)
    return [results[i] for i in range(len(targets))]


async def send_for_post(
    ctx: Context, source_url: str, html: str, old_links: list[str]
) -> list[SendResult]:
    """Send webmentions from ``source_url`` to every link of ``html`` and to each of
    ``old_links`` no longer in it; links to this site are skipped.  Never raises for
    network trouble: each failure is in its ``SendResult`` (and in ``webmentions_out``)."""
    new = find_links(html, source_url)
    targets = new + [link for link in old_links if link not in new]
    targets = [t for t in dict.fromkeys(targets) if not is_own(ctx, t)]
    return await send_all(ctx, source_url, targets)


def list_sent(db: Database) -> list[dict[str, Any]]:
    """Sent webmentions, newest first, for ``indiebridge webmentions``."""
    rows = db.query("SELECT * FROM webmentions_out ORDER BY sent DESC, source, target")
    return [
        {
            "source": r["source"],
            "target": r["target"],
            "endpoint": r["endpoint"],
            "status": r["status"],
            "location": r["location"],
            "error": r["error"],
            "ok": not r["error"] and r["status"] is not None and 200 <= r["status"] < 300,
            "sent": dt.datetime.fromtimestamp(r["sent"], dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }
        for r in rows
    ]
