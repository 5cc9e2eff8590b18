"""The delivery queue and worker, against ``httpx.MockTransport`` peers and a fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import itertools
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bridge import __version__, keys
from bridge.db import Database
from bridge.federation.delivery import (
    DEFAULT_SCHEDULE,
    DeliveryStats,
    DeliveryWorker,
    enqueue,
    inboxes_for_followers,
    list_deliveries,
    parse_retry_after,
)
from bridge.federation.signatures import PublicKeyInfo, verify_request

pytestmark = pytest.mark.anyio

KEY_ID = "https://blog.example/ap/actor.json#main-key"
T0 = 1_750_000_000.0
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> RSAPrivateKey:
    return keys.generate(tmp_path_factory.mktemp("delivery-keys")).rsa


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state.sqlite3")
    yield database
    database.close()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def activity(n: int = 1, kind: str = "Create") -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"https://blog.example/ap/posts/p{n}/create.json",
        "type": kind,
        "actor": "https://blog.example/ap/actor.json",
        "object": {"id": f"https://blog.example/ap/posts/p{n}.json", "content": "héllo ✨"},
    }


def make_worker(
    db: Database, key: RSAPrivateKey, clock: Clock, handler: Handler, **kwargs: Any
) -> DeliveryWorker:
    kwargs.setdefault("allow_private", True)
    return DeliveryWorker(
        db,
        private_key=key,
        key_id=KEY_ID,
        clock=clock,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def row(db: Database, inbox: str, activity_id: str | None = None) -> dict[str, Any]:
    found = db.one(
        "SELECT * FROM deliveries WHERE inbox = ? AND activity_id = ?",
        (inbox, activity_id or activity()["id"]),
    )
    assert found is not None
    return dict(found)


# ---- queue ---------------------------------------------------------------------------------


def test_enqueue_is_idempotent_per_activity_and_inbox(db: Database) -> None:
    a, b = "https://a.example/inbox", "https://B.example:8443/users/x/inbox"
    assert enqueue(db, activity(), [a, b, a], now=T0) == 2
    assert enqueue(db, activity(), [b, a], now=T0 + 5) == 0
    assert enqueue(db, activity(), [a, "https://c.example/inbox"], now=T0 + 5) == 1
    assert db.one("SELECT COUNT(*) AS n FROM outgoing")["n"] == 1  # type: ignore[index]
    stored = row(db, b)
    assert (stored["host"], stored["state"], stored["next_try"], stored["tries"]) == (
        "b.example",
        "queued",
        T0,
        0,
    )
    assert row(db, a)["next_try"] == T0  # the second enqueue did not reschedule it
    body = db.one("SELECT body FROM outgoing")["body"]  # type: ignore[index]
    assert json.loads(body) == activity()


def test_a_large_fan_out_is_queued_in_chunks_and_a_broken_one_finished_by_a_second_call(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write lock is let go between chunks (``queue.ENQUEUE_CHUNK``), so inbox POSTs
    are not stalled behind one long transaction; a crash between chunks leaves a prefix
    that the same call, repeated, completes."""
    from bridge.federation.delivery import queue

    monkeypatch.setattr(queue, "ENQUEUE_CHUNK", 2)
    inboxes = [f"https://h{i}.example/inbox" for i in range(5)]
    begun: list[str] = []
    db.con.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None)
    real_host = queue.inbox_host

    def crash_at_the_fifth(inbox: str) -> str | None:
        if inbox == inboxes[4]:
            raise KeyboardInterrupt  # the process killed in the third chunk
        return real_host(inbox)

    monkeypatch.setattr(queue, "inbox_host", crash_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        enqueue(db, activity(), inboxes, now=T0)
    assert len(begun) == 3  # three transactions for five inboxes, two a chunk
    queued = [r["inbox"] for r in db.query("SELECT inbox FROM deliveries ORDER BY id")]
    assert queued == inboxes[:4]  # the first two chunks committed, the third rolled back

    monkeypatch.setattr(queue, "inbox_host", real_host)
    assert enqueue(db, activity(), inboxes, now=T0 + 1) == 1
    assert db.one("SELECT COUNT(*) AS n FROM deliveries")["n"] == 5  # type: ignore[index]
    assert db.one("SELECT COUNT(*) AS n FROM outgoing")["n"] == 1  # type: ignore[index]


def test_enqueue_marks_unusable_inbox_failed(db: Database) -> None:
    assert enqueue(db, activity(), ["mailto:x@example.com", "https://ok.example/i"], now=T0) == 2
    bad = row(db, "mailto:x@example.com")
    assert (bad["state"], bad["last_error"]) == ("failed", "invalid inbox URL")
    with pytest.raises(ValueError, match="string id"):
        enqueue(db, {"type": "Create"}, ["https://ok.example/i"])


def test_inboxes_for_followers_groups_shared_inboxes(db: Database) -> None:
    followers = [
        ("https://m.example/users/a", "https://m.example/users/a/inbox", "https://m.example/inbox"),
        ("https://m.example/users/b", "https://m.example/users/b/inbox", "https://m.example/inbox"),
        ("https://solo.example/u", "https://solo.example/u/inbox", None),
        ("https://empty.example/u", "https://empty.example/u/inbox", ""),
    ]
    with db.tx() as con:
        for actor, inbox, shared in followers:
            con.execute(
                "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, created, updated)"
                " VALUES (?, ?, ?, ?, 0, 0)",
                (actor, inbox, shared, actor + "#follow"),
            )
        con.execute(
            "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, state, created, updated)"
            " VALUES ('https://p.example/u', 'https://p.example/inbox', NULL, 'f', 'pending', 0, 0)"
        )
    assert inboxes_for_followers(db) == [
        "https://empty.example/u/inbox",
        "https://m.example/inbox",
        "https://solo.example/u/inbox",
    ]


# ---- outcomes ------------------------------------------------------------------------------


async def test_202_delivers_a_signed_post_of_the_stored_bytes(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://peer.example/users/x/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    stored = db.one("SELECT body FROM outgoing")["body"].encode()  # type: ignore[index]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, text="accepted")

    worker = make_worker(db, rsa_key, clock, handler, base_url="https://blog.example")
    stats = await worker.run_until_idle()
    assert stats == DeliveryStats(delivered=1)

    [request] = seen
    assert request.method == "POST" and str(request.url) == inbox
    assert request.content == stored
    assert request.headers["content-type"] == "application/activity+json"
    assert request.headers["accept"] == "application/activity+json"
    assert request.headers["user-agent"] == f"indiebridge/{__version__} (+https://blog.example)"
    assert request.headers["date"] == email.utils.formatdate(T0, usegmt=True)
    assert request.headers["digest"].startswith("SHA-256=")

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        assert key_id == KEY_ID
        return PublicKeyInfo(KEY_ID, "https://blog.example/ap/actor.json", rsa_key.public_key())

    verified = await verify_request(
        "POST",
        inbox,
        request.headers,
        request.content,
        lookup,
        now=dt.datetime.fromtimestamp(T0, dt.UTC),
    )
    assert verified.scheme == "cavage"

    done = row(db, inbox)
    assert (done["state"], done["tries"], done["last_status"], done["last_error"]) == (
        "done",
        1,
        202,
        "",
    )
    assert await worker.run_until_idle() == DeliveryStats()  # nothing left
    assert len(seen) == 1


async def test_500_then_202_sends_a_fresh_signature_each_time(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://peer.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(500, text="boom\nstack trace")
        return httpx.Response(202)

    worker = make_worker(db, rsa_key, clock, handler)
    assert await worker.run_until_idle() == DeliveryStats(retrying=1)
    first = row(db, inbox)
    assert first["state"] == "queued" and first["tries"] == 1
    assert first["last_status"] == 500
    assert first["last_error"] == "500 Internal Server Error: boom stack trace"
    assert T0 + 60 <= first["next_try"] <= T0 + 60 * 1.2

    assert await worker.run_until_idle() == DeliveryStats()  # not due yet
    clock.now = first["next_try"] + 1
    assert await worker.run_until_idle() == DeliveryStats(delivered=1)
    second = row(db, inbox)
    assert (second["state"], second["tries"], second["last_status"]) == ("done", 2, 202)

    a, b = seen
    assert a.content == b.content
    assert json.loads(a.content)["id"] == activity()["id"]
    assert a.headers["date"] != b.headers["date"]
    assert a.headers["signature"] != b.headers["signature"]


async def test_429_retry_after_seconds_sets_next_try(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://busy.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"})

    worker = make_worker(db, rsa_key, clock, handler)
    assert await worker.run_until_idle() == DeliveryStats(retrying=1)
    queued = row(db, inbox)
    assert queued["next_try"] == T0 + 120
    assert queued["last_error"] == "429 Too Many Requests"


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after(email.utils.formatdate(T0 + 300, usegmt=True), T0) == 300
    assert parse_retry_after(email.utils.formatdate(T0 - 300, usegmt=True), T0) == 1
    assert parse_retry_after("999999", T0) == 24 * 3600
    assert parse_retry_after("0", T0) == 1
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


@pytest.mark.parametrize(
    ("error", "prefix"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout: ReadTimeout"),
        (httpx.ConnectTimeout("connect timed out"), "timeout: ConnectTimeout"),
        (httpx.ConnectError("connection refused"), "connection: ConnectError"),
        (httpx.ReadError("connection reset by peer"), "connection: ReadError"),
        (httpx.RemoteProtocolError("server disconnected"), "connection: RemoteProtocolError"),
    ],
)
async def test_network_failures_are_retried(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock, error: Exception, prefix: str
) -> None:
    inbox = "https://flaky.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return httpx.Response(200)

    worker = make_worker(db, rsa_key, clock, handler)
    assert await worker.run_until_idle() == DeliveryStats(retrying=1)
    queued = row(db, inbox)
    assert queued["state"] == "queued" and queued["last_status"] is None
    assert queued["last_error"].startswith(prefix)
    clock.now += 3600
    assert await worker.run_until_idle() == DeliveryStats(delivered=1)


async def test_a_hanging_peer_times_out_and_is_retried(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://slow.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(202)

    worker = make_worker(db, rsa_key, clock, handler, timeout=0.05)
    assert await worker.run_until_idle() == DeliveryStats(retrying=1)
    assert row(db, inbox)["last_error"].startswith("timeout")


async def test_gives_up_after_the_whole_schedule(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://down.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    attempts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(clock.now)
        return httpx.Response(503, text="maintenance")

    worker = make_worker(db, rsa_key, clock, handler)
    for _ in range(50):
        await worker.run_until_idle()
        current = row(db, inbox)
        if current["state"] != "queued":
            break
        clock.now = current["next_try"]
    assert len(attempts) == len(DEFAULT_SCHEDULE) + 1
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, step in zip(gaps, DEFAULT_SCHEDULE, strict=True):
        assert step <= gap <= step * 1.2
    total = attempts[-1] - attempts[0]
    assert 20 * 3600 < total < 30 * 3600  # about a day
    failed = row(db, inbox)
    assert failed["state"] == "failed" and failed["tries"] == len(DEFAULT_SCHEDULE) + 1
    assert failed["last_status"] == 503
    assert failed["last_error"] == "gave up after 10 attempts: 503 Service Unavailable: maintenance"
    clock.now += 10 * 86400
    assert await worker.run_until_idle() == DeliveryStats()
    assert worker.stats == DeliveryStats(retrying=9, failed=1)


async def test_410_marks_gone_and_calls_on_gone(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    gone_inbox, ok_inbox = "https://gone.example/users/x/inbox", "https://ok.example/inbox"
    enqueue(db, activity(1), [gone_inbox, ok_inbox], now=T0)
    enqueue(db, activity(2), [gone_inbox], now=T0 + 30)  # queued, not due yet
    removed: list[str] = []
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(410 if request.url.host == "gone.example" else 202)

    worker = make_worker(db, rsa_key, clock, handler, on_gone=removed.append)
    assert await worker.run_until_idle() == DeliveryStats(delivered=1, gone=1)
    assert removed == [gone_inbox]
    assert row(db, gone_inbox)["state"] == "gone"
    later = row(db, gone_inbox, activity(2)["id"])
    assert (later["state"], later["tries"], later["last_status"]) == ("gone", 0, 410)
    clock.now += 3600
    assert await worker.run_until_idle() == DeliveryStats()
    assert seen.count(gone_inbox) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 422, 501, 301])
async def test_other_4xx_fail_at_once(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock, status: int
) -> None:
    inbox = "https://strict.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, headers={"Location": "https://elsewhere.example/"})

    worker = make_worker(db, rsa_key, clock, handler)
    assert await worker.run_until_idle() == DeliveryStats(failed=1)
    failed = row(db, inbox)
    assert (failed["state"], failed["tries"], failed["last_status"]) == ("failed", 1, status)
    assert failed["last_error"].startswith(f"{status} ")
    clock.now += 86400
    assert await worker.run_until_idle() == DeliveryStats()
    assert calls == 1


async def test_401_is_retried(db: Database, rsa_key: RSAPrivateKey, clock: Clock) -> None:
    enqueue(db, activity(), ["https://keyless.example/inbox"], now=T0)
    worker = make_worker(db, rsa_key, clock, lambda r: httpx.Response(401))
    assert await worker.run_until_idle() == DeliveryStats(retrying=1)


async def test_double_knock_falls_back_to_cavage(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    enqueue(db, activity(), ["https://old.example/inbox"], now=T0)
    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        rfc9421 = "signature-input" in request.headers
        schemes.append("rfc9421" if rfc9421 else "cavage")
        return httpx.Response(401 if rfc9421 else 202)

    worker = make_worker(db, rsa_key, clock, handler, scheme="rfc9421-first")
    assert await worker.run_until_idle() == DeliveryStats(delivered=1)
    assert schemes == ["rfc9421", "cavage"]


async def test_response_body_is_read_only_a_little(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inbox = "https://chatty.example/inbox"
    enqueue(db, activity(), [inbox], now=T0)
    worker = make_worker(
        db, rsa_key, clock, lambda r: httpx.Response(500, content=b"x" * 5_000_000)
    )
    await worker.run_until_idle()
    error = row(db, inbox)["last_error"]
    assert error.startswith("500 Internal Server Error: xxx") and len(error) <= 300


# ---- limits --------------------------------------------------------------------------------


async def test_per_host_and_global_limits(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inboxes = [f"https://big.example/users/{i}/inbox" for i in range(20)]
    inboxes += [f"https://small{i}.example/inbox" for i in range(10)]
    enqueue(db, activity(), inboxes, now=T0)
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    peak_total = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal peak_total
        host = request.url.host
        in_flight[host] = in_flight.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), in_flight[host])
        peak_total = max(peak_total, sum(in_flight.values()))
        await asyncio.sleep(0.02)
        in_flight[host] -= 1
        return httpx.Response(202)

    worker = make_worker(db, rsa_key, clock, handler, concurrency=6, per_host=3)
    assert await worker.run_until_idle() == DeliveryStats(delivered=30)
    assert peak["big.example"] == 3
    assert peak_total == 6


async def test_claims_in_batches(db: Database, rsa_key: RSAPrivateKey, clock: Clock) -> None:
    inboxes = [f"https://h{i}.example/inbox" for i in range(300)]
    enqueue(db, activity(), inboxes, now=T0)
    claimed: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        found = db.one("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'sending'")
        assert found is not None
        claimed.append(found["n"])
        return httpx.Response(202)

    worker = make_worker(db, rsa_key, clock, handler, concurrency=8, batch_size=40)
    assert await worker.run_until_idle() == DeliveryStats(delivered=300)
    assert max(claimed) <= 40
    assert row(db, inboxes[-1])["state"] == "done"


async def test_private_addresses_are_refused_unless_allowed(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    addresses = {"public.example": ["93.184.215.14"], "sneaky.example": ["127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        if host not in addresses:
            raise OSError("no such host")
        return addresses[host]

    inboxes = [
        "https://public.example/inbox",
        "https://sneaky.example/inbox",
        "http://10.1.2.3/inbox",
        "https://[::1]/inbox",
        "https://nxdomain.example/inbox",
    ]
    enqueue(db, activity(), inboxes, now=T0)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(202)

    worker = make_worker(db, rsa_key, clock, handler, allow_private=False, resolver=resolver)
    assert await worker.run_until_idle() == DeliveryStats(delivered=1, failed=3, retrying=1)
    assert seen == ["https://public.example/inbox"]
    for inbox in inboxes[1:4]:
        refused = row(db, inbox)
        assert refused["state"] == "failed" and "non-public address" in refused["last_error"]
    assert row(db, inboxes[4])["last_error"].startswith("cannot resolve nxdomain.example")


# ---- crash recovery, daemon loop, listing -----------------------------------------------


def test_recover_requeues_rows_left_sending(
    db: Database, rsa_key: RSAPrivateKey, clock: Clock
) -> None:
    inboxes = [f"https://r{i}.example/inbox" for i in range(3)]
    enqueue(db, activity(), inboxes, now=T0)
    with db.tx() as con:
        con.execute(
            "UPDATE deliveries SET state = 'sending', tries = 2 WHERE inbox != ?", (inboxes[2],)
        )
        con.execute("UPDATE deliveries SET state = 'done' WHERE inbox = ?", (inboxes[2],))
    clock.now = T0 + 500
    worker = make_worker(db, rsa_key, clock, lambda r: httpx.Response(202))
    assert worker.recover() == 2
    for inbox in inboxes[:2]:
        assert (row(db, inbox)["state"], row(db, inbox)["next_try"], row(db, inbox)["tries"]) == (
            "queued",
            T0 + 500,
            2,
        )
    assert row(db, inboxes[2])["state"] == "done"
    assert worker.recover() == 0


async def test_run_forever_wakes_on_enqueue_and_stops(db: Database, rsa_key: RSAPrivateKey) -> None:
    delivered = asyncio.Event()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["id"])
        delivered.set()
        return httpx.Response(202)

    worker = DeliveryWorker(
        db,
        private_key=rsa_key,
        key_id=KEY_ID,
        allow_private=True,
        transport=httpx.MockTransport(handler),
        poll_interval=60,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    await asyncio.sleep(0.05)
    enqueue(db, activity(), ["https://peer.example/inbox"])
    worker.wake()
    async with asyncio.timeout(5):
        await delivered.wait()
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert seen == [activity()["id"]]
    assert worker.stats.delivered == 1


async def test_stopping_returns_unsent_jobs_to_the_queue(
    db: Database, rsa_key: RSAPrivateKey
) -> None:
    inboxes = [f"https://one.example/u/{i}/inbox" for i in range(10)]
    enqueue(db, activity(), inboxes)
    started = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(0.1)
        return httpx.Response(202)

    worker = DeliveryWorker(
        db,
        private_key=rsa_key,
        key_id=KEY_ID,
        allow_private=True,
        per_host=2,
        transport=httpx.MockTransport(handler),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    async with asyncio.timeout(5):
        await started.wait()
    stop.set()
    async with asyncio.timeout(5):
        await task
    states = [r["state"] for r in db.query("SELECT state FROM deliveries ORDER BY id")]
    assert states.count("done") == 2  # the two in flight were finished
    assert states.count("queued") == 8 and "sending" not in states


async def test_list_deliveries(db: Database, rsa_key: RSAPrivateKey, clock: Clock) -> None:
    enqueue(db, activity(1), ["https://ok.example/inbox", "https://bad.example/inbox"], now=T0)
    worker = make_worker(
        db,
        rsa_key,
        clock,
        lambda r: httpx.Response(202 if r.url.host == "ok.example" else 403, text="blocked"),
    )
    await worker.run_until_idle()
    everything = list_deliveries(db)
    assert {d["state"] for d in everything} == {"done", "failed"}
    [failed] = list_deliveries(db, failed_only=True)
    assert failed == {
        "activity_id": activity(1)["id"],
        "type": "Create",
        "inbox": "https://bad.example/inbox",
        "state": "failed",
        "tries": 1,
        "next_try": T0,
        "last_status": 403,
        "last_error": "403 Forbidden: blocked",
        "updated": T0,
    }
    assert len(list_deliveries(db, limit=1)) == 1
