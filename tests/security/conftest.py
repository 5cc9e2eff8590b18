"""The hostile-input, fault and load suite: shared harness, categories and the summary table.

Every test here belongs to one category, set with the ``category`` marker::

    pytestmark = [pytest.mark.category("inbox")]

At the end of a run that collected any of these tests, a table shows per category how
many cases were tried and how many held (passed).  An expected failure (``xfail``) is a
case tried that does not hold yet: it names the fix still needed.

The ``InboxHarness`` is the daemon in-process, as ``tests/federation/test_daemon_inbox.py`` drives
it: requests are signed with ``bridge.federation.signatures.sign_request``, remote actors and keys
are seeded in the cache, and the fetcher runs on ``httpx.MockTransport`` serving only the
documents a test registers (everything else is a 404), so no traffic leaves the process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge import config as config_mod
from bridge import keys as keymod
from bridge.daemon import app as daemon_mod
from bridge.db import Database
from bridge.federation.actors import Actors, parse_actor
from bridge.federation.context import Context, make_context
from bridge.federation.fetch import IPAddress, SafeFetcher, is_public_address
from bridge.federation.inbox import RateLimiter
from bridge.federation.signatures import HTTPSignatureAuth, SchemeMemory, sign_request
from bridge.site import build as site_mod
from bridge.site.comments import CommentStore
from tests.netfakes import SpyBackend

_FEDERATION_CATEGORIES = (
    "signed-for",  # a request signed for another server, replayed here
    "unverified",  # what a failed verification may leave behind
    "redirect-id",  # identity through redirects
    "retention",  # how much the inbox table keeps
    "slow-origin",  # one slow origin must not stall the processor
    "http-limits",  # header size and count, body deadline, concurrency cap
)
# Comment threading, visibility, authorship, display names and the HTML parse budget.
_CONVERSATION_CATEGORIES = ("threads", "audience", "identity", "display", "parse")
CATEGORIES = (
    "inbox",
    "fetch",
    "render",
    "fault",
    "load",
    "routes",  # the daemon's GET routes: odd paths and page numbers
    *_FEDERATION_CATEGORIES,
    *_CONVERSATION_CATEGORIES,
)

ALICE = "https://remote.example/users/alice"
MALLORY = "https://other.example/users/mallory"
CAROL = "https://third.example/users/carol"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
POST_SLUG = "first-article"


# ---- categories and the summary table ------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "category(name): the security suite category of a test "
        f"({', '.join(CATEGORIES)}); counted in the end-of-run summary table",
    )


_SUITE = Path(__file__).resolve().parent
_categories: dict[str, str] = {}
_outcomes: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SUITE not in Path(str(item.path)).resolve().parents:
            continue
        marker = item.get_closest_marker("category")
        if marker is None or not marker.args or marker.args[0] not in CATEGORIES:
            raise pytest.UsageError(
                f"{item.nodeid}: every security test needs @pytest.mark.category(...) "
                f"with one of {CATEGORIES}"
            )
        _categories[item.nodeid] = marker.args[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _categories:
        return
    previous = _outcomes.get(report.nodeid)
    if report.skipped and hasattr(report, "wasxfail"):
        outcome = "xfail"
    elif report.skipped:
        outcome = "skipped"
    elif report.failed:
        outcome = "failed"
    elif report.when == "call":
        outcome = "held"
    else:
        return
    # A later phase never turns a failure into success (teardown errors count).
    if previous in ("failed", "xfail", "skipped") and outcome == "held":
        return
    if previous == "failed":
        return
    _outcomes[report.nodeid] = outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    rows: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    for nodeid, outcome in _outcomes.items():
        rows[_categories[nodeid]][outcome] += 1
    tr = terminalreporter
    tr.section("security suite: cases tried and held")
    tr.write_line(f"{'category':<10} {'tried':>6} {'held':>6} {'not held':>9}  (expected failures)")
    total: Counter[str] = Counter()
    for name in CATEGORIES:
        counts = rows[name]
        tried = counts["held"] + counts["failed"] + counts["xfail"]
        if not tried and not counts["skipped"]:
            continue
        total.update(counts)
        tr.write_line(
            f"{name:<10} {tried:>6} {counts['held']:>6} "
            f"{counts['failed'] + counts['xfail']:>9}  ({counts['xfail']})"
        )
    tried = total["held"] + total["failed"] + total["xfail"]
    tr.write_line(
        f"{'all':<10} {tried:>6} {total['held']:>6} "
        f"{total['failed'] + total['xfail']:>9}  ({total['xfail']})"
    )
    if total["skipped"]:
        tr.write_line(f"({total['skipped']} skipped, not counted as tried)")


# ---- common fixtures ---------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pem_of(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def remote_keys() -> dict[str, rsa.RSAPrivateKey]:
    """One RSA key per simulated remote actor (generated once: RSA-2048 takes a moment)."""
    return {
        actor: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for actor in (ALICE, MALLORY, CAROL)
    }


def actor_doc(actor: str, key: rsa.RSAPrivateKey | None, **extra: Any) -> dict[str, Any]:
    host = actor.split("/")[2]
    name = actor.rsplit("/", 1)[1]
    doc: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": actor,
        "type": "Person",
        "preferredUsername": name,
        "name": name.title(),
        "url": f"https://{host}/@{name}",
        "inbox": actor + "/inbox",
        "endpoints": {"sharedInbox": f"https://{host}/inbox"},
    }
    if key is not None:
        doc["publicKey"] = {"id": actor + "#main-key", "owner": actor, "publicKeyPem": pem_of(key)}
    doc.update(extra)
    return doc


class Body(httpx.AsyncByteStream):
    """A streamed body, as ``SafeFetcher`` reads raw chunks."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class Remote:
    """What the rest of the fediverse serves, by URL; everything else answers 404.

    A hostile sender controls its own server: tests register what that server answers.
    """

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        self.stalled: list[str] = []
        self.requests: list[str] = []

    def serve(
        self,
        url: str,
        doc: Any,
        status: int = 200,
        content_type: str = "application/activity+json",
    ) -> None:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.docs[url] = (status, body, content_type)

    def redirect(self, url: str, location: str) -> None:
        """``url`` answers 302 to ``location`` (an open redirect on that server)."""
        self.redirects[url] = location

    def stall(self, prefix: str) -> None:
        """URLs starting with ``prefix`` never answer (a server that accepts and hangs)."""
        self.stalled.append(prefix)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if any(url.startswith(prefix) for prefix in self.stalled):
            await asyncio.sleep(3600)
        if url in self.redirects:
            return httpx.Response(302, headers={"Location": self.redirects[url]})
        missing = (404, b'{"error": "not found"}', "application/json")
        status, body, ctype = self.docs.get(url, missing)
        return httpx.Response(status, headers={"Content-Type": ctype}, stream=Body(body))


def snapshot_store(db_path: Path, content_dir: Path) -> dict[str, Any]:
    """Every table the inbox and its handlers write, plus every comment file's bytes."""
    con = sqlite3.connect(db_path)
    try:
        tables = {
            t: sorted(con.execute(f"SELECT * FROM {t}").fetchall())
            for t in (
                *("inbox", "followers", "deliveries", "outgoing", "notifications", "blocks"),
                *("actors", "keys"),
            )
        }
    finally:
        con.close()
    root = content_dir / "comments"
    tables["comment files"] = sorted(
        (p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in root.rglob("*")
        if p.is_file()
    )
    return tables


class InboxHarness:
    """The daemon's app in-process with a mock fediverse (see the module docstring)."""

    def __init__(self, site: Path, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        self.config = config_mod.load(site)
        site_mod.build(self.config)
        self.remote = Remote()
        self.db = Database(self.config.db_path)
        ctx = make_context(
            self.config,
            self.db,
            keymod.load(self.config.state_dir),
            transport=httpx.MockTransport(self.remote.handler),
        )
        self.daemon = daemon_mod.Daemon(self.config, ctx=ctx)
        # Retries are due at once here: process() runs "until nothing is left to do".
        self.daemon.processor.retry_delay = lambda tries: 0.0
        self.ctx = self.daemon.ctx
        self.sent: list[tuple[dict[str, Any], list[str]]] = []
        self.dirty: list[str] = []
        self.ctx.enqueue = lambda activity, inboxes: self.sent.append((activity, inboxes))
        self.ctx.mark_dirty = self.dirty.append
        self.keys = dict(keys)  # a test may add signers without touching the shared keys
        for actor, key in keys.items():
            self.add_actor(actor, key)
        app = daemon_mod.create_app(self.config, daemon=self.daemon)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=self.config.federation_url
        )
        self.initial_comments = {c.id for _, c in self.ctx.comments.iter_all()}

    def add_actor(self, actor: str, key: rsa.RSAPrivateKey | None, **extra: Any) -> dict[str, Any]:
        doc = actor_doc(actor, key, **extra)
        self.ctx.actors.store(parse_actor(doc))
        self.remote.serve(actor, doc)
        return doc

    @property
    def actor_id(self) -> str:
        return self.config.actor_id

    @property
    def post_url(self) -> str:
        return self.config.post_url(POST_SLUG)

    def unlimited(self) -> None:
        """No rate limit (for tests that send many activities from one host)."""
        self.daemon.limiter = RateLimiter(per_minute=10**9, follows_per_minute=10**9)

    def signed_request(
        self,
        activity: Any,
        *,
        path: str = "/inbox",
        signer: str = ALICE,
        key_id: str | None = None,
        now: dt.datetime | None = None,
        body: bytes | None = None,
        scheme: str = "cavage",
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        raw = body if body is not None else json.dumps(activity).encode()
        request = httpx.Request(
            "POST",
            self.config.federation_url + path,  # signed for our own host
            content=raw,
            headers={"Content-Type": "application/activity+json", **(headers or {})},
        )
        sign_request(
            request,
            self.keys[signer],
            key_id or signer + "#main-key",
            scheme,  # type: ignore[arg-type]
            now or dt.datetime.now(dt.UTC),
        )
        return request

    async def send(self, request: httpx.Request, body: bytes | None = None) -> httpx.Response:
        """Send a (possibly tampered) signed request: ``body`` replaces what was signed."""
        content = body if body is not None else request.content
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        return await self.client.post(request.url.path, content=content, headers=headers)

    async def post(self, activity: Any, **kwargs: Any) -> httpx.Response:
        return await self.send(self.signed_request(activity, **kwargs))

    def store(self) -> dict[str, Any]:
        return snapshot_store(self.config.db_path, self.config.content_dir)

    def comments(self) -> dict[str, Any]:
        """Comments that arrived during the test (the test site ships one)."""
        return {
            c.id: c for _, c in self.ctx.comments.iter_all() if c.id not in self.initial_comments
        }

    def inbox_rows(self) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM inbox ORDER BY received")

    async def process(self) -> int:
        """Run the processor until nothing is left to do (retries included)."""
        total = 0
        for _ in range(10):
            n = await self.daemon.processor.process_pending(wait=None)
            total += n
            if not n:
                break
        return total

    async def close(self) -> None:
        await self.client.aclose()
        await self.daemon.writer.close()
        await self.ctx.fetcher.aclose()
        self.db.close()


@pytest.fixture
async def inbox(
    make_site: Callable[..., Path], remote_keys: dict[str, rsa.RSAPrivateKey]
) -> AsyncIterator[InboxHarness]:
    h = InboxHarness(make_site({"allow_private_addresses": True}), remote_keys)
    yield h
    await h.close()


def note(
    obj_id: str,
    *,
    author: str = ALICE,
    in_reply_to: str | None = None,
    content: str = "<p>Nice post!</p>",
    to: Iterable[str] = (PUBLIC,),
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": obj_id,
        "type": "Note",
        "attributedTo": author,
        "content": content,
        "to": list(to),
        "published": "2026-02-01T10:00:00Z",
    }
    if in_reply_to is not None:
        doc["inReplyTo"] = in_reply_to
    doc.update(extra)
    return doc


def create(actor: str, obj: Any, n: int = 1) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/activities/create-{n}",
        "type": "Create",
        "actor": actor,
        "object": obj,
        "to": [PUBLIC],
    }


# ---- hostile fetching: loopback server, fake DNS, connection spy ------------------------------


HOSTS = {
    "public.test": ["127.0.0.1"],
    "author.test": ["127.0.0.1"],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.1", "192.168.1.1"],
    "six.test": ["::1"],
    # What the system resolver makes of numeric host names that are not dotted quads.
    "2130706433": ["127.0.0.1"],
    "0x7f.1": ["127.0.0.1"],
}
ALLOWED_NAMES = ("public.test", "author.test")


async def fake_resolver(host: str, port: int) -> list[str]:
    if host not in HOSTS:
        raise OSError(f"unknown test host {host}")
    return list(HOSTS[host])


def loopback_names(host: str, ip: IPAddress) -> bool:
    """Only the named test hosts may be 127.0.0.1; every other address as in production."""
    if host in ALLOWED_NAMES and str(ip) == "127.0.0.1":
        return True
    return is_public_address(ip)


def guarded_fetcher(spy: SpyBackend, **options: Any) -> SafeFetcher:
    """A production ``SafeFetcher`` (connect-time guard) whose DNS is ``fake_resolver``."""
    settings: dict[str, Any] = {
        "resolver": fake_resolver,
        "address_policy": loopback_names,
        "network_backend": spy,
        "timeout": 2.0,
    }
    settings.update(options)
    return SafeFetcher(**settings)


def context_with_fetcher(config: config_mod.SiteConfig, fetcher: SafeFetcher) -> Context:
    """The site's context with ``fetcher`` everywhere (actors, webmentions, authors)."""
    keys = keymod.load(config.state_dir)
    db = Database(config.db_path)
    auth = HTTPSignatureAuth(keys.rsa, config.key_id, memory=SchemeMemory())
    return Context(
        config=config,
        db=db,
        keys=keys,
        fetcher=fetcher,
        auth=auth,
        actors=Actors(db, fetcher, auth),
        comments=CommentStore(config.content_dir),
    )


@pytest.fixture
def spy() -> SpyBackend:
    return SpyBackend()


@pytest.fixture
def hostile_site(make_site: Callable[..., Path]) -> Iterator[config_mod.SiteConfig]:
    """A built test site with the production address guard (private addresses refused)."""
    config = config_mod.load(make_site())
    site_mod.build(config)
    yield config
