"""The delivery loop: claim due rows, send each as a signed POST, record the outcome.

Attempts are bounded by a global semaphore (``concurrency``), a per-host semaphore
(``per_host``, taken first so jobs waiting for a busy host do not hold global slots),
httpx connect/read/write/pool timeouts of ``timeout`` seconds and an overall deadline of
``3 * timeout`` per attempt.  Each attempt is a new request: the stored JSON bytes, signed
afresh by ``HTTPSignatureAuth`` (new ``Date``/``created``, digest and signature).

Memory stays flat however long the queue is: rows are claimed in batches of at most
``batch_size`` (500), a new batch only when fewer than half are still pending, and each
activity body is loaded once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.config import SiteConfig
from bridge.db import Database
from bridge.errors import (
    BlockedAddressError,
    DeliveryError,
    InboxGone,
    PermanentDelivery,
    RetryableDelivery,
)
from bridge.federation.addresses import Resolver
from bridge.federation.delivery import queue
from bridge.federation.delivery.policy import (
    DEFAULT_SCHEDULE,
    RetryPolicy,
    ScheduleRetry,
    classify_response,
    one_line,
)
from bridge.federation.delivery.transport import (
    ACTIVITY_JSON,
    AddressGuard,
    HostLimits,
    default_user_agent,
    make_client,
    read_some,
)
from bridge.federation.signatures import HTTPSignatureAuth, PrivateKey, SchemeMemory, SchemeSetting
from bridge.keys import ActorKeys

log = logging.getLogger("bridge.federation.delivery")

BATCH_SIZE = 500
POLL_INTERVAL = 15.0
"""``run_forever`` looks at the queue at least this often (other processes may enqueue)."""


@dataclass
class DeliveryStats:
    """What a worker did: attempts that delivered, were rescheduled, failed or found gone."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    gone: int = 0


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """Run ``fn`` in ``loop``: now when called from it, else soon; safe from any thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn()
    else:
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
            loop.call_soon_threadsafe(fn)


class DeliveryWorker:
    """Sends due deliveries: ``run_until_idle()`` once, or ``run_forever(stop)`` in the daemon.

        One worker per process may run at a time; several processes may share a database (each
        claims rows in a transaction, so a row is never sent by two of them).  ``recover()`` must
        only be called when no other worker is running (at daemon start).

        ``from_config`` builds one from the site's settings.  Extra keyword arguments beyond the
        basic ones: ``base_url``/``user_agent`` (the User-Agent is ``indiebridge/<version> (+<base
        url>)``, the base URL defaulting to the key id's origin), ``resolver`` (DNS for the
        private-address check; tests map fake hosts), ``rng`` (jitter), ``retry_policy`` (instead
        of ``schedule``), ``batch_size``, ``poll_interval`` and ``owner`` (a token stored with each
    claimed row, so the rows of this worker alone can be recovered if its process dies).
    """

    def __init__(
        self,
        db: Database,
        *,
        private_key: PrivateKey,
        key_id: str,
        scheme: SchemeSetting = "cavage",
        allow_private: bool = False,
        concurrency: int = 32,
        per_host: int = 4,
        timeout: float = 10.0,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        on_gone: Callable[[str], None] | None = None,
        base_url: str | None = None,
        user_agent: str | None = None,
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
        retry_policy: RetryPolicy | None = None,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL,
        owner: str = "",
    ) -> None:
        if concurrency < 1 or per_host < 1 or batch_size < 1:
            raise ValueError("concurrency, per_host and batch_size must be at least 1")
        self.db = db
        self.concurrency = concurrency
        self.per_host = per_host
        self.timeout = timeout
        self.retry_policy: RetryPolicy = retry_policy or ScheduleRetry(schedule, rng=rng)
        self.clock = clock
        self.on_gone = on_gone
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.owner = owner
        self.user_agent = user_agent or default_user_agent(base_url, key_id)
        self.stats = DeliveryStats()
        self._unrecorded: list[tuple[queue.Job, queue.Outcome, float]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._transport = transport
        self._guard = AddressGuard(allow_private, resolver)
        self._resolver = resolver
        self._auth = HTTPSignatureAuth(
            private_key,
            key_id,
            scheme=scheme,
            memory=SchemeMemory(),
            clock=lambda: dt.datetime.fromtimestamp(self.clock(), dt.UTC),
        )
        self._hosts = HostLimits(per_host)
        self._global = asyncio.Semaphore(concurrency)
        self._pending = 0
        self._stopping = False
        self._running = False
        self._signal: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(
        cls,
        config: SiteConfig,
        db: Database,
        keys: ActorKeys,
        *,
        on_gone: Callable[[str], None] | None = None,
        **options: Any,
    ) -> DeliveryWorker:
        """A worker signing with the site's key and scheme, honouring its address setting."""
        options.setdefault("scheme", config.signature_scheme)
        options.setdefault("allow_private", config.allow_private_addresses)
        options.setdefault("base_url", config.base_url)
        return cls(db, private_key=keys.rsa, key_id=config.key_id, on_gone=on_gone, **options)

    @property
    def allow_private(self) -> bool:
        return self._guard.allow_private

    # ---- public ----------------------------------------------------------------------

    def recover(self) -> int:
        """Put rows a killed worker left in ``sending`` back to ``queued``, due now."""
        count = queue.recover(self.db, self.clock())
        if count:
            log.info("recovered %d deliveries left in flight by an earlier run", count)
        return count

    def wake(self) -> None:
        """Look at the queue now (call after ``enqueue``); safe from any thread."""
        if self._loop is not None and self._signal is not None:
            call_in_loop(self._loop, self._signal.set)

    async def run_until_idle(self) -> DeliveryStats:
        """Deliver every job due now, concurrently; return when none is due or in flight.

        Retries scheduled for later stay queued.  Returns the counts of this run.
        """
        return await self._run(None)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver jobs as they fall due until ``stop`` is set.

        Sleeps until the next due time, a ``wake()``, or ``poll_interval`` at most.  On stop,
        jobs not yet sent go back to ``queued`` and attempts in flight are finished.
        """
        await self._run(stop)

    # ---- the loop --------------------------------------------------------------------

    async def _run(self, stop: asyncio.Event | None) -> DeliveryStats:
        if self._running:
            raise RuntimeError("this DeliveryWorker is already running")
        self._running = True
        self._stopping = False
        self._pending = 0
        self._signal = signal = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # Fresh primitives per run: a worker may be run again under another event loop.
        self._hosts = HostLimits(self.per_host)
        self._global = asyncio.Semaphore(self.concurrency)
        before = DeliveryStats(**vars(self.stats))
        try:
            async with self._client() as client, asyncio.TaskGroup() as tg:
                watcher = tg.create_task(self._watch(stop)) if stop is not None else None
                await self._pump(tg, client, stop, signal)
                self._stopping = True
                if watcher is not None:
                    watcher.cancel()
        finally:
            self._loop = None
            try:
                self._flush_records()
            finally:
                self._running = False
                self._signal = None
        return DeliveryStats(
            delivered=self.stats.delivered - before.delivered,
            retrying=self.stats.retrying - before.retrying,
            failed=self.stats.failed - before.failed,
            gone=self.stats.gone - before.gone,
        )

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        if self._signal is not None:
            self._signal.set()

    async def _pump(
        self,
        tg: asyncio.TaskGroup,
        client: httpx.AsyncClient,
        stop: asyncio.Event | None,
        signal: asyncio.Event,
    ) -> None:
        low_water = max(self.batch_size // 2, 1)
        while stop is None or not stop.is_set():
            claimed = 0
            if self._pending < low_water or self._pending == 0:
                jobs = queue.claim(
                    self.db, self.batch_size - self._pending, self.clock(), self.owner
                )
                claimed = len(jobs)
                for job in jobs:
                    self._pending += 1
                    tg.create_task(self._job(client, job))
                if claimed and self._pending < low_water:
                    continue  # the batch was short of room: maybe more is due
            if stop is None and claimed == 0 and self._pending == 0:
                return
            timeout: float | None = None
            if stop is not None and self._pending < low_water:
                timeout = self._sleep_time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await signal.wait()
            signal.clear()

    def _sleep_time(self) -> float:
        due = queue.next_due(self.db)
        if due is None:
            return self.poll_interval
        return min(max(due - self.clock(), 0.0), self.poll_interval)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = make_client(
            user_agent=self.user_agent,
            timeout=self.timeout,
            per_host=min(self.per_host, self.concurrency),
            allow_private=self.allow_private,
            resolver=self._resolver,
            transport=self._transport,
        )
        try:
            yield client
        finally:
            await client.aclose()

    # ---- one job ---------------------------------------------------------------------

    async def _job(self, client: httpx.AsyncClient, job: queue.Job) -> None:
        try:
            async with self._hosts.hold(job.host), self._global:
                if self._stopping:
                    queue.release(self.db, job, self.clock())
                    return
                outcome = await self._attempt(client, job)
            self._record(job, outcome)
        except asyncio.CancelledError:
            queue.release(self.db, job, self.clock())
            raise
        finally:
            self._pending -= 1
            if self._signal is not None:
                self._signal.set()

    async def _attempt(self, client: httpx.AsyncClient, job: queue.Job) -> int | DeliveryError:
        """One signed POST: the 2xx status when delivered, else the classified error."""
        try:
            async with asyncio.timeout(self.timeout * 3):
                if self._transport is not None:  # ours checks addresses when it connects
                    await self._guard.check(job.inbox)
                request = client.build_request(
                    "POST", job.inbox, content=job.body, headers={"Content-Type": ACTIVITY_JSON}
                )
                response = await client.send(request, auth=self._auth, stream=True)
                try:
                    body = await read_some(response)
                finally:
                    await response.aclose()
            classify_response(
                response.status_code, response.reason_phrase, response.headers, body, self.clock()
            )
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return RetryableDelivery(f"timeout: no answer within {self.timeout * 3:g} s")
        except httpx.TimeoutException as exc:
            return RetryableDelivery(one_line(f"timeout: {type(exc).__name__} {exc}"))
        except httpx.UnsupportedProtocol as exc:
            return PermanentDelivery(one_line(f"unsupported URL: {exc}"))
        except httpx.TransportError as exc:
            return RetryableDelivery(one_line(f"connection: {type(exc).__name__} {exc}"))
        except BlockedAddressError as exc:
            return PermanentDelivery(one_line(f"refused: {exc}"))
        except httpx.InvalidURL as exc:
            return PermanentDelivery(one_line(f"invalid inbox URL: {exc}"))
        except Exception as exc:  # one broken job must not stop the others
            log.exception("delivery of %s to %s crashed", job.activity_id, job.inbox)
            return RetryableDelivery(one_line(f"internal error: {type(exc).__name__} {exc}"))
        return response.status_code

    # ---- recording -------------------------------------------------------------------

    def _outcome(self, job: queue.Job, result: int | DeliveryError, now: float) -> queue.Outcome:
        """The row's next state, counted in ``stats``."""
        if not isinstance(result, DeliveryError):
            self.stats.delivered += 1
            return queue.Outcome("done", result, "")
        tries = job.tries + 1
        if isinstance(result, RetryableDelivery):
            delay = self.retry_policy(tries)
            if delay is not None:
                if result.retry_after is not None:
                    delay = result.retry_after
                self.stats.retrying += 1
                return queue.Outcome("queued", result.status, str(result), now + delay)
            self.stats.failed += 1
            message = one_line(f"gave up after {tries} attempts: {result}")
            return queue.Outcome("failed", result.status, message)
        if isinstance(result, InboxGone):
            self.stats.gone += 1
            return queue.Outcome("gone", result.status, str(result))
        self.stats.failed += 1
        return queue.Outcome("failed", result.status, str(result))

    def _record(self, job: queue.Job, result: int | DeliveryError) -> None:
        now = self.clock()
        outcome = self._outcome(job, result, now)
        if isinstance(result, DeliveryError):
            log.info(
                "delivery of %s to %s: %s -> %s", job.activity_id, job.inbox, result, outcome.state
            )
        else:
            log.debug("delivered %s to %s", job.activity_id, job.inbox)
        self._unrecorded.append((job, outcome, now))
        if self._loop is None:
            self._flush_records()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush_records)

    def _flush_records(self) -> None:
        """Write the outcomes of every attempt that ended in this turn of the event loop in
        one transaction (``queue.record_many``): under a fan-out, a few transactions a
        second instead of one per delivery, so a process at a low priority rarely holds
        the database's write lock when the scheduler pauses it (the inbox's writers wait
        for that lock).  Nothing waits: the flush runs before the loop next sleeps."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        items, self._unrecorded = self._unrecorded, []
        if not items:
            return
        try:
            queue.record_many(self.db, items)
        except BaseException:
            self._unrecorded[:0] = items  # tried again with the next ones, or at the end
            raise
        for job, outcome, _ in items:
            if outcome.state == "gone" and self.on_gone is not None:
                try:
                    self.on_gone(job.inbox)
                except Exception:  # the caller's cleanup must not stop delivery
                    log.exception("on_gone(%s) failed", job.inbox)
