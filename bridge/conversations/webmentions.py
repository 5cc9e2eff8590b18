"""Receiving webmentions: the ``POST /webmention`` endpoint and the verification queue.

This module is also the webmention API the daemon, the command line and ``publish`` call:
it re-exports the sending side (``webmention_outbox``) and Salmention (``salmention``).

* ``receive`` is the ``POST /webmention`` handler (W3C Webmention, section 3.2).  It only
  checks the request (``webmention_verify.validate``).  Each refusal is a 400 with a
  one-line plain-text reason; otherwise the pair is stored in ``webmentions_in`` and
  answered 202 without Location.  At most ``MAX_PENDING`` wait; past that, 503.
* ``process_pending`` verifies stored pairs in the background (``webmention_verify.verify``),
  queued per source host: rows are taken in turns across hosts, each host's run one at
  a time, several hosts at once.  ``SourceTooComplex`` (an HTML bomb) fails the row
  without a traceback; ``SourceRetryLater`` (timeouts, connection errors, 5xx, 408, 429)
  is retried after ``RETRY_DELAYS`` (``tries``/``next_try``), then the row is marked
  failed; any other failure of one source marks its row failed and never stalls the rows
  after it.  Then the due Salmentions are sent.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bridge.conversations.salmention import (
    queue_salmention,
    run_due_salmentions,
    salmention,
)
from bridge.conversations.webmention_outbox import list_sent, record_sent, send_for_post
from bridge.conversations.webmention_verify import validate, verify
from bridge.db import Database, now
from bridge.errors import SourceRetryLater, SourceTooComplex
from bridge.federation import followers
from bridge.federation.context import Context

__all__ = [
    "list_sent",
    "process_pending",
    "queue_salmention",
    "receive",
    "record_sent",
    "run_due_salmentions",
    "salmention",
    "send_for_post",
    "validate",
    "verify",
]

log = logging.getLogger("indiebridge.webmentions")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM = 16_384
MAX_PENDING = 10_000
RETRY_DELAYS = (60.0, 600.0, 3600.0)  # after the 1st, 2nd, 3rd transient failure; then failed
VERIFY_ORIGINS = 4  # source origins verified at once


def _bad(reason: str) -> PlainTextResponse:
    return PlainTextResponse(reason + "\n", status_code=400)


async def receive(ctx: Context, request: Request, notify: Callable[[], None]) -> Response:
    """``POST /webmention``: check, store, answer 202 (verification happens later)."""
    from bridge.federation.inbox import read_body

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        return _bad(f"expected Content-Type {FORM_TYPE} with source and target")
    body = await read_body(request, MAX_FORM)
    if body is None:
        return PlainTextResponse(f"request larger than {MAX_FORM} bytes\n", status_code=413)
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value.strip())
    source, target = form.get("source"), form.get("target")
    reason, _ = validate(ctx, source, target)
    if reason is not None:
        return _bad(reason)
    assert source is not None and target is not None
    if followers.is_blocked(ctx.db, source):
        return PlainTextResponse("Accepted\n", status_code=202)  # dropped, as the inbox does
    pending = ctx.db.one("SELECT count(*) AS n FROM webmentions_in WHERE status = 'new'")
    if pending is not None and pending["n"] >= MAX_PENDING:
        return PlainTextResponse(
            "too many webmentions waiting; try again later\n",
            status_code=503,
            headers={"Retry-After": "600"},
        )
    with ctx.db.tx() as con:
        cur = con.execute(
            "INSERT OR IGNORE INTO webmentions_in(source, target, received, status, next_try) "
            "VALUES (?, ?, ?, 'new', ?)",
            (source, target, now(), now()),
        )
    if cur.rowcount:
        notify()
    return PlainTextResponse(
        "Accepted: the source will be checked for a link to the target.\n", status_code=202
    )


def _origin(source: str) -> str:
    try:
        return (urlsplit(source).hostname or source).lower()
    except ValueError:
        return source


def _due_by_origin(db: Database, limit: int) -> dict[str, list[Any]]:
    """Up to ``limit`` due rows, taken in turns across source hosts (each host's oldest
    first), so a flood from one host cannot crowd out the others.  At most
    ``MAX_PENDING`` rows wait, so reading every due row stays cheap."""
    queues: dict[str, deque[Any]] = {}
    rows = db.query(
        "SELECT id, source, target, tries FROM webmentions_in "
        "WHERE status = 'new' AND next_try <= ? ORDER BY received, id",
        (now(),),
    )
    for row in rows:
        queues.setdefault(_origin(row["source"]), deque()).append(row)
    by_origin: dict[str, list[Any]] = {}
    taken = 0
    while queues and taken < limit:
        for origin in list(queues):
            if taken >= limit:
                break
            by_origin.setdefault(origin, []).append(queues[origin].popleft())
            taken += 1
            if not queues[origin]:
                del queues[origin]
    return by_origin


async def process_pending(ctx: Context, limit: int = 20) -> int:
    """Verify due webmentions and send due Salmentions; returns how many were handled.

    Verification is queued per source host: each host's rows run one after another, up to
    ``VERIFY_ORIGINS`` hosts at once, so one host's slow or hostile pages delay only that
    host's other pages.
    """
    by_origin = _due_by_origin(ctx.db, limit)
    limiter = anyio.Semaphore(VERIFY_ORIGINS)

    async def one_origin(rows: list[Any]) -> None:
        async with limiter:
            for row in rows:
                await _verify_row(ctx, row)

    async with anyio.create_task_group() as tg:
        for rows in by_origin.values():
            tg.start_soon(one_origin, rows)
    sent = await run_due_salmentions(ctx)
    return sum(len(rows) for rows in by_origin.values()) + sent


async def _verify_row(ctx: Context, row: Any) -> None:
    status, error, next_try = "done", "", 0.0
    try:
        error = await verify(ctx, row["source"], row["target"])
    except SourceRetryLater as exc:
        tries = row["tries"] + 1
        error = str(exc)
        if tries <= len(RETRY_DELAYS):
            status, next_try = "new", now() + RETRY_DELAYS[tries - 1]
        else:
            status = "failed"
    except SourceTooComplex as exc:  # refused by the parse bounds: no traceback needed
        status, error = "failed", f"source too complex: {exc}"
    except Exception as exc:  # one bad source must not stall the queue
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("webmention %s -> %s failed", row["source"], row["target"])
    if error:
        log.info("webmention %s -> %s: %s", row["source"], row["target"], error)
    _finish(ctx.db, row["id"], row["source"], row["target"], status, error, next_try)


def _finish(
    db: Database, row_id: int, source: str, target: str, status: str, error: str, next_try: float
) -> None:
    with db.tx() as con:
        if status != "new":  # one finished row per (source, target, status)
            con.execute(
                "DELETE FROM webmentions_in WHERE source = ? AND target = ? AND status = ? "
                "AND id != ?",
                (source, target, status, row_id),
            )
        con.execute(
            "UPDATE webmentions_in SET status = ?, error = ?, tries = tries + 1, next_try = ? "
            "WHERE id = ?",
            (status, error[:500], next_try, row_id),
        )
