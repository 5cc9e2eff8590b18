"""Delivering our activities to followers' inboxes, with a persistent retry queue.

The queue lives in two tables (see ``bridge.db``): ``outgoing`` holds each activity's JSON
once, keyed by its id; ``deliveries`` holds one row per (activity, inbox).  ``enqueue``
writes both in one transaction; a ``DeliveryWorker`` sends them.

Row states::

    queued --claim--> sending --2xx--> done
      ^                  |----retryable, schedule not exhausted--> queued (next_try later)
      |                  |----retryable, schedule exhausted-------> failed
      |                  |----410-------------------------------> gone (on_gone(inbox))
      |                  '----other permanent error------------> failed
      '---- recover() after a crash, or a worker stopping before it sent ----'

``sending`` means *claimed by a worker*: the row is in that worker's memory, waiting for a
connection slot or in flight.  A process killed with rows in ``sending`` leaves them there;
``recover()`` (called once at daemon start, when no other worker runs) puts them back to
``queued``.  The activity id never changes, so a receiver that got the activity just before
the crash deduplicates the second copy.

Classification (Mastodon's rules for what it receives, mirrored so we treat peers alike):

* 2xx: delivered.
* 401, 408, 429, 5xx except 501, timeouts, connection errors and resets, DNS failures:
  ``RetryableDelivery``.  The next try waits ``schedule[tries - 1]`` seconds plus up to 20 %
  jitter, or what ``Retry-After`` says (seconds or an HTTP date, at least 1 s, at most 24 h).
* 410: ``InboxGone`` (a ``PermanentDelivery``): the row and every other queued row for the
  same inbox become ``gone`` and ``on_gone(inbox)`` is called, so the caller drops the
  followers behind that inbox.
* Any other 4xx, 501, redirects (a signed POST is never replayed to another URL), a
  non-http(s) inbox URL or one resolving to a private address: ``PermanentDelivery``,
  ``failed`` at once.

``DEFAULT_SCHEDULE`` is 1 m, 5 m, 15 m, 30 m, 1 h, 2 h, 4 h, 8 h, 8 h: ten attempts spread
over about 24 hours (23.85 h before jitter, up to 28.6 h with it).  After the last
retryable failure the row is ``failed`` with the last status and error kept for
``indiebridge deliveries --failed``.

Each attempt is a new request: the stored JSON bytes, signed afresh by
``HTTPSignatureAuth`` (new ``Date``/``created``, digest and signature).  Attempts are bounded
by a global semaphore (``concurrency``), a per-host semaphore (``per_host``, taken first so
jobs waiting for a busy host do not hold global slots), httpx connect/read/write/pool
timeouts of ``timeout`` seconds and an overall deadline of ``3 * timeout`` per attempt.
At most ``MAX_RESPONSE_BYTES`` of a response body are read (and responses are asked for
uncompressed), only to quote it in ``last_error``.

Memory stays flat however long the queue is: rows are claimed in batches of at most
``batch_size`` (500), a new batch only when fewer than half are still pending, and each
activity body is loaded once per batch.

Private addresses: unless ``allow_private``, the inbox host is resolved before each attempt
and the attempt refused when any address is not public (``bridge.fetch.is_public_address``,
the rules ``SafeFetcher`` applies).  ``SafeFetcher`` checks at connect time instead, but it
does not expose its guarded transport, and its redirect following and body limits do not
suit deliveries; the check here leaves a DNS-rebinding window between the check and the
connection that the connect-time guard does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import ipaddress
import json
import logging
import random
import sqlite3
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bridge import __version__
from bridge.db import Database
from bridge.errors import DeliveryError, PermanentDelivery, RetryableDelivery
from bridge.federation.fetch import Resolver, is_public_address, system_resolver
from bridge.federation.signatures import HTTPSignatureAuth, PrivateKey, SchemeMemory, SchemeSetting

__all__ = [
    "ACTIVITY_JSON",
    "DEFAULT_SCHEDULE",
    "DeliveryStats",
    "DeliveryWorker",
    "InboxGone",
    "classify_response",
    "enqueue",
    "inboxes_for_followers",
    "list_deliveries",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

ACTIVITY_JSON = "application/activity+json"

DEFAULT_SCHEDULE: tuple[float, ...] = (
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    8 * 3600,
)
"""Seconds to wait after the 1st, 2nd, ... failed attempt; one more failure gives up."""

JITTER = 0.2
"""Each backoff delay is stretched by a random factor in [1, 1 + JITTER)."""

MAX_RETRY_AFTER = 24 * 3600.0
MIN_RETRY_AFTER = 1.0
MAX_RESPONSE_BYTES = 4096
BATCH_SIZE = 500
POLL_INTERVAL = 15.0
"""``run_forever`` looks at the queue at least this often (other processes may enqueue)."""
DNS_CACHE_SECONDS = 60.0
_DNS_CACHE_MAX = 4096
_ERROR_CHARS = 300


class InboxGone(PermanentDelivery):
    """410 Gone: the inbox (its account, or for a shared inbox its server) no longer exists."""


@dataclass
class DeliveryStats:
    """What a worker did: attempts that delivered, were rescheduled, failed or found gone."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    gone: int = 0


# ---- queue -------------------------------------------------------------------------------


def _inbox_host(inbox: str) -> str | None:
    """The lowercase host of an http(s) inbox URL, or None when the URL is not usable."""
    try:
        url = httpx.URL(inbox)
    except (httpx.InvalidURL, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url.host.lower()


def enqueue(
    db: Database, activity: dict[str, Any], inboxes: Iterable[str], *, now: float | None = None
) -> int:
    """Queue ``activity`` for each distinct inbox, in one transaction.

    The activity JSON is stored once (``INSERT OR IGNORE`` by its ``id``: a second call with
    the same id keeps the first body) and one ``deliveries`` row is added per inbox not
    queued for it yet, due at ``now``.  An inbox that is not an http(s) URL gets a row in
    state ``failed`` so it shows in ``indiebridge deliveries --failed``.

    Returns:
        The number of delivery rows added (0 when everything was queued before).
    Raises:
        ValueError: the activity has no string ``id``.
    """
    activity_id = activity.get("id")
    if not isinstance(activity_id, str) or not activity_id:
        raise ValueError("an activity needs a string id to be delivered")
    kind = activity.get("type")
    kind = kind if isinstance(kind, str) else ""
    body = json.dumps(activity, ensure_ascii=False, separators=(",", ":"))
    moment = time.time() if now is None else now
    added = 0
    with db.tx() as con:
        con.execute(
            "INSERT OR IGNORE INTO outgoing(id, type, body, created) VALUES (?, ?, ?, ?)",
            (activity_id, kind, body, moment),
        )
        for inbox in dict.fromkeys(inboxes):
            host = _inbox_host(inbox)
            state, error = ("queued", "") if host else ("failed", "invalid inbox URL")
            cur = con.execute(
                "INSERT OR IGNORE INTO deliveries"
                "(activity_id, inbox, host, state, next_try, last_error, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (activity_id, inbox, host or "", state, moment, error, moment, moment),
            )
            added += cur.rowcount
    return added


def inboxes_for_followers(db: Database) -> list[str]:
    """Distinct delivery targets of accepted followers: the shared inbox, else the inbox."""
    rows = db.query(
        "SELECT DISTINCT COALESCE(NULLIF(shared_inbox, ''), inbox) AS target FROM followers"
        " WHERE state = 'accepted' AND COALESCE(NULLIF(shared_inbox, ''), inbox) != ''"
        " ORDER BY target"
    )
    return [str(row["target"]) for row in rows]


def list_deliveries(
    db: Database, *, failed_only: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Delivery rows for ``indiebridge deliveries``, most recently updated first.

    Each dict has ``activity_id``, ``type``, ``inbox``, ``state``, ``tries``, ``next_try``,
    ``last_status``, ``last_error`` and ``updated``.  ``failed_only`` keeps state ``failed``.
    """
    rows = db.query(
        "SELECT d.activity_id, o.type, d.inbox, d.state, d.tries, d.next_try, d.last_status,"
        " d.last_error, d.updated FROM deliveries d LEFT JOIN outgoing o ON o.id = d.activity_id"
        " WHERE d.state = 'failed' OR NOT ? ORDER BY d.updated DESC, d.id DESC LIMIT ?",
        (failed_only, limit),
    )
    return [
        {
            "activity_id": row["activity_id"],
            "type": row["type"] or "",
            "inbox": row["inbox"],
            "state": row["state"],
            "tries": row["tries"],
            "next_try": row["next_try"],
            "last_status": row["last_status"],
            "last_error": row["last_error"],
            "updated": row["updated"],
        }
        for row in rows
    ]


# ---- classification ----------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), capped.

    Returns None when the header is absent or unreadable; otherwise a delay between
    ``MIN_RETRY_AFTER`` and ``MAX_RETRY_AFTER``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        delay = float(int(text))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delay = when.timestamp() - now
    return min(max(delay, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def _one_line(text: str, limit: int = _ERROR_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def classify_response(
    status: int, reason: str, headers: httpx.Headers, body: bytes, now: float
) -> None:
    """Return for a 2xx; raise ``RetryableDelivery``, ``InboxGone`` or ``PermanentDelivery``.

    The exception message is the one-line ``last_error``: status, reason and the start of
    the response body.
    """
    if 200 <= status < 300:
        return
    text = body.decode("utf-8", errors="replace") if body else ""
    if headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        text = f"({len(body)} encoded bytes)"
    message = _one_line(f"{status} {reason}".strip() + (f": {text}" if text.strip() else ""))
    if status == 410:
        raise InboxGone(message, status)
    if status in (401, 408, 429) or (500 <= status < 600 and status != 501):
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        raise RetryableDelivery(message, status, retry_after)
    if 300 <= status < 400:
        location = headers.get("location", "")
        message = _one_line(f"{status} {reason}: redirect to {location} not followed")
    raise PermanentDelivery(message, status)


# ---- the worker --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    id: int
    activity_id: str
    inbox: str
    host: str
    tries: int
    body: bytes


class _NotClosing(httpx.AsyncBaseTransport):
    """A transport lent by the caller: the worker's client must not close it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class _Clients:
    """An ``httpx.AsyncClient`` per host with jobs in flight, plus a few idle ones kept.

    One client for every host made each request scan the whole connection pool
    (httpcore assigns waiting requests to connections in O(requests x connections)):
    at 32 connections the client spent more time there than sending.  A client per host
    holds at most ``per_host`` connections (the worker's per-host limit is taken before a
    client is used), so that scan stays tiny.  All clients share one TLS context.  With a
    transport lent by the caller (tests), one client wraps it for every host.
    """

    def __init__(self, make: Callable[[], httpx.AsyncClient], keep_idle: int = 64) -> None:
        self._make = make
        self._keep_idle = keep_idle
        self._active: dict[str, tuple[httpx.AsyncClient, int]] = {}
        self._idle: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def use(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        entry = self._active.get(host)
        if entry is None:
            client = self._idle.pop(host, None) or self._make()
            users = 0
        else:
            client, users = entry
        self._active[host] = (client, users + 1)
        try:
            yield client
        finally:
            client, users = self._active[host]
            if users > 1:
                self._active[host] = (client, users - 1)
            else:
                del self._active[host]
                self._idle[host] = client
                while len(self._idle) > self._keep_idle:
                    _, old = self._idle.popitem(last=False)
                    task = asyncio.get_running_loop().create_task(old.aclose())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        clients = [c for c, _ in self._active.values()] + list(self._idle.values())
        self._active.clear()
        self._idle.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class _Shared(_Clients):
    """The same client for every host (a transport lent by the caller)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__(lambda: client)
        self._client = client

    @contextlib.asynccontextmanager
    async def use(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        yield self._client

    async def aclose(self) -> None:
        await self._client.aclose()


class _HostLimits:
    """One semaphore per host, forgotten when no job for that host is waiting or running."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._entries: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        sem, users = self._entries.get(host) or (asyncio.Semaphore(self._per_host), 0)
        self._entries[host] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._entries[host]
            if users <= 1:
                del self._entries[host]
            else:
                self._entries[host] = (sem, users - 1)

    def __len__(self) -> int:
        return len(self._entries)


def _default_user_agent(base_url: str | None, key_id: str) -> str:
    if base_url is None:
        url = httpx.URL(key_id)
        base_url = f"{url.scheme}://{url.netloc.decode('ascii')}/" if url.host else None
    suffix = f" (+{base_url})" if base_url else ""
    return f"indiebridge/{__version__}{suffix}"


class DeliveryWorker:
    """Sends due deliveries: ``run_until_idle()`` once, or ``run_forever(stop)`` in the daemon.

    One worker per process may run at a time; several processes may share a database (each
    claims rows in a transaction, so a row is never sent by two of them).  ``recover()`` must
    only be called when no other worker is running (at daemon start).

    Extra keyword arguments beyond the basic ones: ``base_url``/``user_agent`` (the
    User-Agent is ``indiebridge/<version> (+<base url>)``, the base URL defaulting to the
    key id's origin), ``resolver`` (DNS for the private-address check; tests map fake hosts),
    ``rng`` (jitter), ``batch_size`` and ``poll_interval``.
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
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        if concurrency < 1 or per_host < 1 or batch_size < 1:
            raise ValueError("concurrency, per_host and batch_size must be at least 1")
        self.db = db
        self.allow_private = allow_private
        self.concurrency = concurrency
        self.per_host = per_host
        self.timeout = timeout
        self.schedule: tuple[float, ...] = tuple(schedule)
        self.clock = clock
        self.on_gone = on_gone
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.user_agent = user_agent or _default_user_agent(base_url, key_id)
        self.stats = DeliveryStats()
        self._transport = transport
        self._resolver = resolver or system_resolver
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._auth = HTTPSignatureAuth(
            private_key,
            key_id,
            scheme=scheme,
            memory=SchemeMemory(),
            clock=lambda: dt.datetime.fromtimestamp(self.clock(), dt.UTC),
        )
        self._dns_ok: dict[str, float] = {}
        self._hosts = _HostLimits(per_host)
        self._global = asyncio.Semaphore(concurrency)
        self._pending = 0
        self._stopping = False
        self._running = False
        self._signal: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- public ----------------------------------------------------------------------

    def recover(self) -> int:
        """Put rows a killed worker left in ``sending`` back to ``queued``, due now."""
        now = self.clock()
        with self.db.tx() as con:
            cur = con.execute(
                "UPDATE deliveries SET state = 'queued', next_try = ?, updated = ?"
                " WHERE state = 'sending'",
                (now, now),
            )
        if cur.rowcount:
            log.info("recovered %d deliveries left in flight by an earlier run", cur.rowcount)
        return cur.rowcount

    def wake(self) -> None:
        """Look at the queue now (call after ``enqueue``); safe from any thread."""
        loop, signal = self._loop, self._signal
        if loop is None or signal is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            signal.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(signal.set)

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
        self._hosts = _HostLimits(self.per_host)
        self._global = asyncio.Semaphore(self.concurrency)
        before = DeliveryStats(**vars(self.stats))
        try:
            async with self._client() as clients, asyncio.TaskGroup() as tg:
                watcher = tg.create_task(self._watch(stop)) if stop is not None else None
                await self._pump(tg, clients, stop, signal)
                self._stopping = True
                if watcher is not None:
                    watcher.cancel()
        finally:
            self._running = False
            self._signal = None
            self._loop = None
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
        clients: _Clients,
        stop: asyncio.Event | None,
        signal: asyncio.Event,
    ) -> None:
        low_water = max(self.batch_size // 2, 1)
        while stop is None or not stop.is_set():
            claimed = 0
            if self._pending < low_water or self._pending == 0:
                jobs = self._claim(self.batch_size - self._pending)
                claimed = len(jobs)
                for job in jobs:
                    self._pending += 1
                    tg.create_task(self._job(clients, job))
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
        row = self.db.one("SELECT MIN(next_try) AS due FROM deliveries WHERE state = 'queued'")
        if row is None or row["due"] is None:
            return self.poll_interval
        return min(max(float(row["due"]) - self.clock(), 0.0), self.poll_interval)

    def _claim(self, room: int) -> list[_Job]:
        """Mark up to ``room`` due rows ``sending`` (one transaction) and load their bodies."""
        if room <= 0:
            return []
        now = self.clock()
        with self.db.tx() as con:
            rows = con.execute(
                "SELECT id, activity_id, inbox, host, tries FROM deliveries"
                " WHERE state = 'queued' AND next_try <= ? ORDER BY next_try, id LIMIT ?",
                (now, room),
            ).fetchall()
            if not rows:
                return []
            ids = [row["id"] for row in rows]
            con.executemany(
                "UPDATE deliveries SET state = 'sending', updated = ? WHERE id = ?",
                [(now, i) for i in ids],
            )
            bodies: dict[str, bytes] = {}
            for activity_id in {row["activity_id"] for row in rows}:
                found = con.execute(
                    "SELECT body FROM outgoing WHERE id = ?", (activity_id,)
                ).fetchone()
                bodies[activity_id] = found["body"].encode("utf-8") if found else b""
        return [
            _Job(
                id=row["id"],
                activity_id=row["activity_id"],
                inbox=row["inbox"],
                host=row["host"],
                tries=row["tries"],
                body=bodies[row["activity_id"]],
            )
            for row in rows
        ]

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[_Clients]:
        headers = {
            "User-Agent": self.user_agent,
            "Accept": ACTIVITY_JSON,
            "Accept-Encoding": "identity",
        }
        if self._transport is not None:
            limits = httpx.Limits(
                max_connections=self.concurrency,
                max_keepalive_connections=self.concurrency,
                keepalive_expiry=30.0,
            )
            clients: _Clients = _Shared(
                httpx.AsyncClient(
                    transport=_NotClosing(self._transport),
                    limits=limits,
                    timeout=httpx.Timeout(self.timeout),
                    follow_redirects=False,
                    trust_env=False,
                    headers=headers,
                )
            )
        else:
            tls: list[ssl.SSLContext] = []  # made on first use: loading CAs takes a while
            per_host = min(self.per_host, self.concurrency)
            limits = httpx.Limits(
                max_connections=per_host,
                max_keepalive_connections=per_host,
                keepalive_expiry=30.0,
            )

            def make() -> httpx.AsyncClient:
                if not tls:
                    tls.append(httpx.create_ssl_context(trust_env=False))
                transport = httpx.AsyncHTTPTransport(
                    verify=tls[0], limits=limits, trust_env=False, retries=0
                )
                return httpx.AsyncClient(
                    transport=transport,
                    limits=limits,
                    timeout=httpx.Timeout(self.timeout),
                    follow_redirects=False,
                    trust_env=False,
                    headers=headers,
                )

            clients = _Clients(make)
        try:
            yield clients
        finally:
            await clients.aclose()

    # ---- one job ---------------------------------------------------------------------

    async def _job(self, clients: _Clients, job: _Job) -> None:
        try:
            async with self._hosts.hold(job.host), self._global:
                if self._stopping:
                    self._release(job)
                    return
                async with clients.use(job.host) as client:
                    outcome = await self._attempt(client, job)
            self._record(job, outcome)
        except asyncio.CancelledError:
            self._release(job)
            raise
        finally:
            self._pending -= 1
            if self._signal is not None:
                self._signal.set()

    async def _attempt(self, client: httpx.AsyncClient, job: _Job) -> int | DeliveryError:
        """One signed POST: the 2xx status when delivered, else the classified error."""
        try:
            async with asyncio.timeout(self.timeout * 3):
                await self._check_address(job.inbox)
                request = client.build_request(
                    "POST",
                    job.inbox,
                    content=job.body,
                    headers={"Content-Type": ACTIVITY_JSON},
                )
                response = await client.send(request, auth=self._auth, stream=True)
                try:
                    body = await _read_some(response, MAX_RESPONSE_BYTES)
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
            return RetryableDelivery(_one_line(f"timeout: {type(exc).__name__} {exc}"))
        except httpx.UnsupportedProtocol as exc:
            return PermanentDelivery(_one_line(f"unsupported URL: {exc}"))
        except httpx.TransportError as exc:
            return RetryableDelivery(_one_line(f"connection: {type(exc).__name__} {exc}"))
        except httpx.InvalidURL as exc:
            return PermanentDelivery(_one_line(f"invalid inbox URL: {exc}"))
        except Exception as exc:  # one broken job must not stop the others
            log.exception("delivery of %s to %s crashed", job.activity_id, job.inbox)
            return RetryableDelivery(_one_line(f"internal error: {type(exc).__name__} {exc}"))
        return response.status_code

    async def _check_address(self, inbox: str) -> None:
        """Refuse an inbox on a private address unless allowed (resolved, cached briefly)."""
        url = httpx.URL(inbox)
        if url.scheme not in ("http", "https") or not url.host:
            raise PermanentDelivery(f"invalid inbox URL {inbox!r}: only http(s) is delivered to")
        if self.allow_private:
            return
        host = url.host
        now = time.monotonic()
        if self._dns_ok.get(host, 0.0) > now:
            return
        ips = _ip_addresses([host])
        if not ips:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                ips = _ip_addresses(await self._resolver(host, port))
            except OSError as exc:
                raise RetryableDelivery(_one_line(f"cannot resolve {host}: {exc}")) from None
            if not ips:
                raise RetryableDelivery(f"cannot resolve {host}: no addresses")
        for ip in ips:
            if not is_public_address(ip):
                raise PermanentDelivery(f"refused: {host} resolves to non-public address {ip}")
        if len(self._dns_ok) >= _DNS_CACHE_MAX:
            self._dns_ok.clear()
        self._dns_ok[host] = now + DNS_CACHE_SECONDS

    # ---- recording -------------------------------------------------------------------

    def _backoff(self, tries: int) -> float:
        base = self.schedule[min(tries, len(self.schedule)) - 1]
        return base * (1.0 + JITTER * self._rng.random())

    def _release(self, job: _Job) -> None:
        """Give a claimed row back without counting an attempt (stop or cancellation)."""
        with contextlib.suppress(sqlite3.Error), self.db.tx() as con:
            con.execute(
                "UPDATE deliveries SET state = 'queued', updated = ? WHERE id = ? "
                "AND state = 'sending'",
                (self.clock(), job.id),
            )

    def _record(self, job: _Job, outcome: int | DeliveryError) -> None:
        now = self.clock()
        tries = job.tries + 1
        error = outcome if isinstance(outcome, DeliveryError) else None
        status = outcome if isinstance(outcome, int) else outcome.status
        gone = False
        if error is None:
            state, next_try, message = "done", None, ""
            self.stats.delivered += 1
        elif isinstance(error, RetryableDelivery) and tries <= len(self.schedule):
            delay = error.retry_after if error.retry_after is not None else self._backoff(tries)
            state, next_try, message = "queued", now + delay, str(error)
            self.stats.retrying += 1
        elif isinstance(error, InboxGone):
            state, next_try, message = "gone", None, str(error)
            gone = True
            self.stats.gone += 1
        else:
            state, next_try, message = "failed", None, str(error)
            if isinstance(error, RetryableDelivery):
                message = _one_line(f"gave up after {tries} attempts: {message}")
            self.stats.failed += 1
        if error is None:
            log.debug("delivered %s to %s", job.activity_id, job.inbox)
        else:
            log.info("delivery of %s to %s: %s -> %s", job.activity_id, job.inbox, error, state)
        with self.db.tx() as con:
            con.execute(
                "UPDATE deliveries SET state = ?, tries = ?, next_try = COALESCE(?, next_try),"
                " last_status = ?, last_error = ?, updated = ? WHERE id = ?",
                (state, tries, next_try, status, message, now, job.id),
            )
            if gone:
                con.execute(
                    "UPDATE deliveries SET state = 'gone', last_status = 410, last_error = ?,"
                    " updated = ? WHERE inbox = ? AND state = 'queued'",
                    (_one_line(f"inbox gone (410 for {job.activity_id})"), now, job.inbox),
                )
        if gone and self.on_gone is not None:
            try:
                self.on_gone(job.inbox)
            except Exception:  # the caller's cleanup must not stop delivery
                log.exception("on_gone(%s) failed", job.inbox)


def _ip_addresses(texts: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for text in texts:
        with contextlib.suppress(ValueError):
            out.append(ipaddress.ip_address(text.strip("[]")))
    return out


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` raw bytes of the body (the rest is not read)."""
    if response.is_stream_consumed:  # a body built in memory (test transports) is read already
        with contextlib.suppress(httpx.ResponseNotRead):
            return response.content[:limit]
        return b""
    out = bytearray()
    async for chunk in response.aiter_raw():
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)
