"""Processing stored activities: the ``inbox`` rows with status ``new``, through the handlers.

Outcomes of one row:

* the handler returns: ``done`` (and the body is dropped; the id stays for deduplication);
* it raises ``FetchError`` (a remote server did not answer as needed) or runs past its time
  budget: ``new`` again, due after a backoff (30 s, doubling, at most an hour), ``failed``
  after ``max_tries``;
* it raises another ``BridgeError`` or a ``ValueError`` (what a remote document may cause):
  ``failed`` with the message;
* the stored activity does not have the shape handlers rely on (``shape_error``):
  ``failed`` before any handler runs, so a hostile payload never reaches code that would
  trip over it;
* anything else is a bug in a handler: the row is marked ``failed`` (so it never jams the
  queue) and the exception is raised again by the next ``process_pending`` call, so tests
  see it and the daemon logs it with its traceback.

One slow origin stalls no one (tests in tests/security/test_inbox_slow_origin.py): rows
run concurrently, at most ``per_origin`` (2) at a time per sending host and
``concurrency`` (8) in all; each activity has a total time budget (``budget``, 20 s) for
all the fetches it makes; and ``process_pending`` returns after ``wait`` seconds even when
slow rows are still running, so rows that arrive meanwhile are started at once instead of
queuing behind them.  Unknown types are marked done.

Each round starts what readers see (replies and their Updates and Deletes) before likes,
boosts and follows, but never an Undo or a Delete before what it undoes (``order``).  An
Undo or a Delete also waits for the rows of its actor started before it, and those started
after it wait for it, so one round never interleaves them.

Outcomes are committed in batches: the handlers of one ``process_pending`` call hand
their comment files to a writing thread, without an ``fsync`` each
(``CommentStore.deferring``, ``comment_writer``), and go on; when the call's rows have
finished, the processor waits for those files to land, one flush makes every file written
so far durable (``syncfs`` on Linux), and only then one transaction records the outcomes.
A file that could not be written records no outcome of its batch: the rows run again,
once the processor has waited (``retry_delay`` of the failures in a row: 30 s, then
doubling up to ``WRITE_PAUSE_MAX``), so a full disk is not a loop of fetches that cannot
be kept.
A crash, or a ``kill -9`` of the process, before that transaction leaves the rows
``new``: they run again after a restart, and since a comment's file name is a hash of what
it is, running a row again rewrites the same file instead of adding a second comment.
Until its outcome is recorded, a finished row is not started again by this processor.
What waits for a batch's files (its Salmentions, ``CommentStore.after_batch``) is queued
once they are written and before the ``syncfs``: a row run again finds its comment
written and queues nothing, so queued any later, a kill in between would lose them.
Queued that early, a power cut before the flush can at worst send a Salmention for a
reply that is written again when its row runs again: a Webmention sent twice is an
update to its receiver, not a second mention.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.errors import BridgeError, FetchError
from bridge.federation.actors import host_of
from bridge.federation.context import Context
from bridge.federation.delivery.transport import HostLimits
from bridge.federation.inbox import order, retention
from bridge.federation.inbox.handlers import Handler
from bridge.federation.inbox.shapes import shape_error
from bridge.site.comments import CommentStore

__all__ = ["BUDGET", "CONCURRENCY", "PER_ORIGIN", "InboxProcessor", "backoff", "shape_error"]

log = logging.getLogger("indiebridge.inbox")

CONCURRENCY = 8
PER_ORIGIN = 2
BUDGET = 20.0
"""Seconds one activity may take, every fetch it makes included."""
WAIT = 0.5
"""Seconds ``process_pending`` waits for rows in flight before it returns."""
WRITE_PAUSE_MAX = 300.0
"""At most this long without starting a row after comment files failed to be written: a
disk an operator has freed is used again within five minutes."""
PRUNE_INTERVAL = 3600.0


def backoff(tries: int) -> float:
    """Seconds before the next try after ``tries`` failed ones: 30 s doubling, 1 h at most."""
    return float(min(30 * 2 ** max(tries - 1, 0), 3600))


class InboxProcessor:
    """Processes stored activities through ``handlers`` (type -> coroutine)."""

    def __init__(
        self,
        ctx: Context,
        handlers: dict[str, Handler],
        max_tries: int = 5,
        *,
        concurrency: int = CONCURRENCY,
        per_origin: int = PER_ORIGIN,
        budget: float = BUDGET,
        retry_delay: Callable[[int], float] = backoff,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.max_tries = max_tries
        self.concurrency = concurrency
        self.per_origin = per_origin
        self.budget = budget
        self.retry_delay = retry_delay
        self.clock = clock
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._by_actor: dict[str, list[tuple[asyncio.Task[None], bool]]] = {}
        """Rows running per actor, in the order started, and whether each is an Undo or a
        Delete (``_start``)."""
        self._bugs: list[Exception] = []
        self._finished = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origins = HostLimits(per_origin)
        self._global = asyncio.Semaphore(concurrency)
        self._pruned_at = 0.0
        self._outcomes: dict[str, tuple[str, str, float]] = {}
        """Finished rows whose outcome (status, error, next try) is not recorded yet."""
        self._store: CommentStore | None = None
        self._write_failures = 0  # batches in a row whose comment files were not written
        self._held_until = 0.0  # no row starts before (``clock``): the files failed

    async def process_pending(self, limit: int = 100, *, wait: float | None = WAIT) -> int:
        """Start due rows (``order.due_rows``: what readers see first) until ``limit`` run;
        return how many rows finished during the call.

        Waits for the rows in flight at most ``wait`` seconds (``None``: until all are
        done, as tests do).  Raises the first handler bug seen since the last call.
        """
        self._bind_loop()
        self._maybe_prune()
        await self._commit()  # rows that finished after the last call returned
        room = limit - len(self._in_flight)
        busy = self._in_flight.keys() | self._outcomes.keys()
        now = self.clock()
        due = room > 0 and now >= self._held_until
        rows = order.due_rows(self.ctx.db, now, room, busy) if due else []
        ctx = self._batch_context()
        for row in rows:
            self._start(ctx, dict(row))
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=wait)
        await self._commit()
        finished, self._finished = self._finished, 0
        if self._bugs:
            bug, self._bugs = self._bugs[0], []
            raise bug
        return finished

    async def aclose(self) -> None:
        """Cancel the rows in flight (they stay ``new`` and run again next time) and record
        the outcomes of those that finished."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._commit()

    def _batch_context(self) -> Context:
        """``ctx`` with a comment store that leaves the ``fsync`` to ``_commit``."""
        if self._store is None or self._store.root != self.ctx.comments.root:
            self._store = self.ctx.comments.deferring()
        ctx = copy.copy(self.ctx)  # keeps the hooks a caller set on ``self.ctx``
        ctx.comments = self._store
        return ctx

    async def _commit(self) -> None:
        """Make the comments written so far durable, then record the finished rows' outcomes
        in one transaction (never the other way round)."""
        if not self._outcomes:
            return
        outcomes = list(self._outcomes.items())
        if self._store is not None:
            try:  # waits for the writing thread: off the event loop
                written = await asyncio.to_thread(self._store.take_unsynced)
            except OSError as exc:
                # A comment file was not written: no row of the batch is recorded, so they
                # all run again (rewriting the same files) instead of one being done
                # without its comment; not at once, though: a full disk stays full for a
                # while, and rows run again at once would fetch and fail in a loop.
                self._write_failures += 1
                pause = min(self.retry_delay(self._write_failures), WRITE_PAUSE_MAX)
                self._held_until = self.clock() + pause
                log.error(
                    "comment files could not be written: %s; the inbox waits %g s, then its"
                    " rows run again",
                    exc,
                    pause,
                )
                for activity_id, _ in outcomes:
                    self._outcomes.pop(activity_id, None)
                return
            self._write_failures = 0
            # The batch's Salmentions are queued before its files are made durable: a row
            # run again finds its comment written and queues none (module docstring).
            self._store.run_after_batch()
            if written:
                await asyncio.to_thread(self._store.sync, written)
        with self.ctx.db.tx() as con:
            con.executemany(
                "UPDATE inbox SET status = ?, tries = tries + 1, error = ?, next_try = ?,"
                " body = CASE WHEN ? = 'done' THEN '' ELSE body END WHERE id = ?",
                [(st, msg[:500], nxt, st, aid) for aid, (st, msg, nxt) in outcomes],
            )
        for activity_id, _ in outcomes:
            self._outcomes.pop(activity_id, None)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # primitives belong to one event loop
            self._loop = loop
            self._in_flight = {}
            self._by_actor = {}
            self._origins = HostLimits(self.per_origin)
            self._global = asyncio.Semaphore(self.concurrency)

    def _maybe_prune(self) -> None:
        moment = self.clock()
        if moment - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = moment
            retention.prune(self.ctx.db, moment)

    def _start(self, ctx: Context, row: dict[str, Any]) -> None:
        """Start ``row``.  An Undo or a Delete runs after every row of its actor started
        before it; any row runs after the last Undo or Delete of its actor started before it."""
        barrier = row["type"] in order.BARRIER_TYPES
        started = [t for t in self._by_actor.get(row["actor"], []) if not t[0].done()]
        if barrier:
            before = [task for task, _ in started]
        else:
            before = [task for task, was_barrier in started if was_barrier][-1:]
        task = asyncio.get_running_loop().create_task(self._run(ctx, row, before))
        self._in_flight[row["id"]] = task
        self._by_actor[row["actor"]] = [*started, (task, barrier)]
        task.add_done_callback(lambda _: self._forget_actor(row["actor"]))

    def _forget_actor(self, actor: str) -> None:
        running = [t for t in self._by_actor.get(actor, []) if not t[0].done()]
        if running:
            self._by_actor[actor] = running
        else:
            self._by_actor.pop(actor, None)

    async def _run(
        self, ctx: Context, row: dict[str, Any], before: list[asyncio.Task[None]]
    ) -> None:
        try:
            if before:
                await asyncio.wait(before)  # their outcomes are their own; only the order matters
            async with self._origins.hold(host_of(row["actor"])), self._global:
                bug = await self.process_one(
                    row["id"], row["body"], row["tries"], bool(row["forwarded"]), ctx=ctx
                )
            if bug is not None:
                self._bugs.append(bug)
        finally:
            self._in_flight.pop(row["id"], None)
            self._finished += 1

    async def process_one(
        self,
        activity_id: str,
        body: str,
        tries: int,
        forwarded: bool,
        *,
        ctx: Context | None = None,
    ) -> Exception | None:
        """Process one row and keep its outcome for ``_commit``; return a handler bug
        instead of raising."""
        status, message, bug = "done", "", None
        try:
            activity = json.loads(body)
            problem = shape_error(activity)
            if problem:
                raise ValueError(f"stored activity {problem}")
            handler = self.handlers.get(activity["type"])
            if handler is not None:
                async with asyncio.timeout(self.budget):
                    await handler(ctx or self.ctx, activity, forwarded)
        except FetchError as exc:
            status, message = self._retry(tries), str(exc)
        except TimeoutError:
            status = self._retry(tries)
            message = f"took longer than {self.budget:g} s (fetches included)"
        except (BridgeError, ValueError, RecursionError) as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("inbox %s: %s", activity_id, message)
        except Exception as exc:  # noqa: BLE001 - a handler bug: recorded, raised by the next call
            status, message, bug = "failed", f"{type(exc).__name__}: {exc}", exc
            log.error("inbox %s: handler bug: %s", activity_id, message)
        next_try = self.clock() + self.retry_delay(tries + 1) if status == "new" else 0.0
        self._outcomes[activity_id] = (status, message, next_try)
        return bug

    def _retry(self, tries: int) -> str:
        return "new" if tries + 1 < self.max_tries else "failed"
