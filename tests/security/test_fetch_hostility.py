"""Fetching URLs that strangers name, through the code that really does it.

``tests/federation/test_fetch.py`` covers ``SafeFetcher`` itself.  Here the same hostility reaches
it through its consumers: the key lookup of the inbox (``Actors.lookup_key``), webmention
source verification (``webmentions.verify`` / ``process_pending``), the author page of a
webmention (``mf2.resolve_author``) and endpoint discovery when we send webmentions.

Every case is bounded in time and bytes, and nothing but 127.0.0.1 is ever connected to:
host names such as ``public.test`` are mapped by a fake resolver, blocked targets are
refused by the production address guard, and a spy backend records each connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.config import SiteConfig
from bridge.conversations import webmentions
from bridge.conversations.webmention_client import send_webmention
from bridge.daemon import app as daemon_mod
from bridge.errors import SignatureError
from bridge.federation.actors import parse_actor
from bridge.federation.context import Context
from bridge.federation.signatures import sign_request
from bridge.site.comments import comment_id
from tests.security.conftest import (
    POST_SLUG,
    SpyBackend,
    actor_doc,
    context_with_fetcher,
    guarded_fetcher,
    pem_of,
)
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = [pytest.mark.anyio, pytest.mark.category("fetch")]

AP = "application/activity+json"
TIMEOUT = 2.0  # the fetcher's limit in these tests
SLACK = 3.0  # what a bounded case may take beyond it on a loaded CI machine
JUNK_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"


@pytest.fixture
async def fctx(hostile_site: SiteConfig, spy: SpyBackend) -> AsyncIterator[Context]:
    ctx = context_with_fetcher(hostile_site, guarded_fetcher(spy, max_bytes=256 * 1024))
    yield ctx
    await ctx.fetcher.aclose()
    ctx.db.close()


def blocked_targets(web: WebServer) -> dict[str, str]:
    port = web.port
    return {
        "loopback": f"http://127.0.0.1:{port}/x",
        "private-10": "http://10.0.0.1/x",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/",
        "ipv6-loopback": f"http://[::1]:{port}/x",
        "mapped-v4": f"http://[::ffff:127.0.0.1]:{port}/x",
        "name-to-10": f"http://internal.test:{port}/x",
        "name-to-metadata": "http://metadata.test/latest/meta-data/",
        "name-to-v6-loopback": f"http://six.test:{port}/x",
        "one-bad-address": f"http://mixed.test:{port}/x",
        "decimal-ip": f"http://2130706433:{port}/x",
        "hex-ip": f"http://0x7f.1:{port}/x",
    }


BLOCKED = [
    "loopback",
    "private-10",
    "metadata",
    "ipv6-loopback",
    "mapped-v4",
    "name-to-10",
    "name-to-metadata",
    "name-to-v6-loopback",
    "one-bad-address",
    "decimal-ip",
    "hex-ip",
]


def only_loopback_hop(spy: SpyBackend, web: WebServer, hops: int = 1) -> None:
    """Every connection made went to the test server (the allowed first hops)."""
    assert spy.connects == [("127.0.0.1", web.port)] * hops, spy.connects


# ---- actor and key documents (the inbox's signature check) -------------------------------


@pytest.mark.parametrize("target", BLOCKED)
async def test_key_lookup_redirected_to_a_private_address_is_refused(
    fctx: Context, web: WebServer, spy: SpyBackend, target: str
) -> None:
    web.route("/users/eve", status=302, headers={"Location": blocked_targets(web)[target]})
    key_id = web.url("/users/eve", host="public.test") + "#main-key"
    with pytest.raises(SignatureError):
        await fctx.actors.lookup_key(key_id, refresh=False)
    only_loopback_hop(spy, web)
    assert fctx.db.query("SELECT * FROM keys") == []


@pytest.mark.parametrize("target", BLOCKED)
async def test_key_id_naming_a_private_address_is_never_connected(
    fctx: Context, web: WebServer, spy: SpyBackend, target: str
) -> None:
    with pytest.raises(SignatureError):
        await fctx.actors.lookup_key(blocked_targets(web)[target] + "#main-key", refresh=False)
    assert spy.connects == []


def _eve(web: WebServer, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    actor = web.url("/users/eve", host="public.test")
    doc = actor_doc(actor, None)
    doc["publicKey"] = {"id": actor + "#main-key", "owner": actor, "publicKeyPem": pem_of(key)}
    return doc


def drip(ex: Exchange) -> None:
    ex.start(200, {"Content-Type": AP})
    ex.write(b'{"id": ')
    while ex.write(b" ") and ex.sleep(0.1):
        pass


def endless(counter: list[int]) -> Callable[[Exchange], None]:
    def handler(ex: Exchange) -> None:
        ex.start(200, {"Content-Type": AP})
        chunk = b"[" * 65536
        while ex.write(chunk):
            counter[0] += len(chunk)

    return handler


def loop(ex: Exchange) -> None:
    ex.redirect(ex.request.path.replace("/a", "/b") if "/a" in ex.request.path else "/users/a")


@pytest.mark.parametrize(
    "case",
    [
        "redirect-loop",
        "slow-drip",
        "endless",
        "html",
        "invalid-utf8",
        "deep-json",
        "wide-json",
        "not-an-object",
        "id-on-another-host",
        "junk-pem",
    ],
)
async def test_hostile_actor_documents_fail_the_lookup_in_bounded_time(
    fctx: Context, web: WebServer, spy: SpyBackend, case: str, remote_key: rsa.RSAPrivateKey
) -> None:
    written = [0]
    doc = _eve(web, remote_key)
    body: bytes = json.dumps(doc).encode()
    ctype = AP
    if case == "redirect-loop":
        web.route("/users/a", handler=loop)
        web.route("/users/b", handler=loop)
        path = "/users/a"
    else:
        path = "/users/eve"
    if case == "slow-drip":
        web.route(path, handler=drip)
    elif case == "endless":
        web.route(path, handler=endless(written))
    elif case != "redirect-loop":
        if case == "html":
            ctype = "text/html"
        elif case == "invalid-utf8":
            body = b'{"id": "\xff\xfe\xfa"}'
        elif case == "deep-json":
            body = b"[" * 100_000 + b"]" * 100_000
        elif case == "wide-json":
            body = json.dumps({f"k{i}": [i] for i in range(20_000)}).encode()
        elif case == "not-an-object":
            body = b'"https://public.test/"'
        elif case == "id-on-another-host":
            body = json.dumps({**doc, "id": "https://victim.example/users/eve"}).encode()
        elif case == "junk-pem":
            doc["publicKey"]["publicKeyPem"] = JUNK_PEM
            body = json.dumps(doc).encode()
        web.route(path, body=body, content_type=ctype)
    key_id = web.url(path, host="public.test") + "#main-key"
    started = time.monotonic()
    with pytest.raises(SignatureError):
        await fctx.actors.lookup_key(key_id, refresh=False)
    assert time.monotonic() - started < TIMEOUT + SLACK
    # The reader stopped at the limit: what was written beyond it sits in socket buffers
    # (several MB on loopback), far from what 2 s of unbounded reading would take.
    assert written[0] < 32 * 1024 * 1024
    if case != "junk-pem":  # that actor document is valid; only its key is not
        assert fctx.db.query("SELECT key_id FROM keys") == []


async def test_a_cached_key_with_a_broken_pem_is_refused_not_a_crash(
    fctx: Context, web: WebServer, remote_key: rsa.RSAPrivateKey
) -> None:
    """An actor may list a second key whose PEM is junk; using that key id later must be
    a signature error (401), not an exception out of the inbox (500)."""
    doc = _eve(web, remote_key)
    broken = {
        "id": doc["id"] + "#second-key",
        "owner": doc["id"],
        "publicKeyPem": JUNK_PEM,
    }
    doc["publicKey"] = [doc["publicKey"], broken]
    fctx.actors.store(parse_actor(doc))
    with pytest.raises(SignatureError):
        await fctx.actors.lookup_key(broken["id"], refresh=False)


@pytest.fixture(scope="module")
def remote_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_signed_post_whose_key_redirects_to_metadata_is_401_without_connecting(
    hostile_site: SiteConfig, web: WebServer, spy: SpyBackend, remote_key: rsa.RSAPrivateKey
) -> None:
    """End to end through the daemon's inbox: the key fetch is guarded like any other."""
    import datetime as dt

    ctx = context_with_fetcher(hostile_site, guarded_fetcher(spy))
    daemon = daemon_mod.Daemon(hostile_site, ctx=ctx)
    app = daemon_mod.create_app(hostile_site, daemon=daemon)
    actor = web.url("/users/eve", host="public.test")
    web.route("/users/eve", status=302, headers={"Location": "http://169.254.169.254/latest/"})
    activity = {"id": actor + "/f", "type": "Follow", "actor": actor, "object": "x"}
    request = httpx.Request(
        "POST",
        hostile_site.federation_url + "/inbox",
        content=json.dumps(activity).encode(),
        headers={"Content-Type": AP},
    )
    sign_request(request, remote_key, actor + "#main-key", "cavage", dt.datetime.now(dt.UTC))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=hostile_site.federation_url
        ) as client:
            headers = {k: v for k, v in request.headers.items() if k != "content-length"}
            r = await client.post("/inbox", content=request.content, headers=headers)
        assert r.status_code == 401
        assert "169.254.169.254" in r.json()["error"]
        only_loopback_hop(spy, web)
        assert ctx.db.query("SELECT * FROM inbox") == []
    finally:
        await daemon.writer.close()
        await ctx.fetcher.aclose()
        ctx.db.close()
        daemon.db.close()


# ---- webmention sources -------------------------------------------------------------------


def target_of(ctx: Context) -> str:
    return ctx.config.post_url(POST_SLUG)


def hentry(ctx: Context, extra: str = "", author: str = "") -> str:
    return (
        '<div class="h-entry"><p class="p-author h-card">'
        + (author or "Eve")
        + f'</p><a class="u-in-reply-to" href="{target_of(ctx)}">re</a>'
        '<div class="e-content">Hello there</div>' + extra + "</div>"
    )


def wm_comment(ctx: Context, source: str) -> Any:
    found = ctx.comments.get(comment_id("webmention", f"{source} {target_of(ctx)}"))
    return found[1] if found else None


@pytest.mark.parametrize("target", BLOCKED)
async def test_webmention_source_redirected_to_a_private_address_is_refused(
    fctx: Context, web: WebServer, spy: SpyBackend, target: str
) -> None:
    web.route("/post", status=301, headers={"Location": blocked_targets(web)[target]})
    source = web.url("/post", host="public.test")
    reason = await webmentions.verify(fctx, source, target_of(fctx))
    assert "refused" in reason or "blocked" in reason or "not a public" in reason, reason
    assert wm_comment(fctx, source) is None
    only_loopback_hop(spy, web)


@pytest.mark.parametrize("target", BLOCKED)
async def test_webmention_source_on_a_private_address_is_never_fetched(
    fctx: Context, web: WebServer, spy: SpyBackend, target: str
) -> None:
    source = blocked_targets(web)[target]
    reason = await webmentions.verify(fctx, source, target_of(fctx))
    assert reason
    assert wm_comment(fctx, source) is None
    assert spy.connects == []


async def test_author_page_on_a_private_address_is_not_fetched(
    fctx: Context, web: WebServer, spy: SpyBackend
) -> None:
    """The source names an author page on the metadata address (authorship discovery):
    the comment is stored with what the source itself says, and nothing else is fetched."""
    page = (
        '<div class="h-entry"><a class="u-author" href="http://metadata.test/latest/">me</a>'
        f'<a class="u-in-reply-to" href="{target_of(fctx)}">re</a>'
        '<div class="e-content">Hi</div></div>'
    )
    web.route("/post", body=page)
    source = web.url("/post", host="public.test")
    assert await webmentions.verify(fctx, source, target_of(fctx)) == ""
    comment = wm_comment(fctx, source)
    assert comment is not None and "metadata" not in comment.author.photo
    only_loopback_hop(spy, web)


async def _process(ctx: Context, source: str) -> list[Any]:
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO webmentions_in(source, target, received, status, next_try) "
            "VALUES (?, ?, 0, 'new', 0)",
            (source, target_of(ctx)),
        )
    await webmentions.process_pending(ctx)
    return ctx.db.query("SELECT status, tries, error FROM webmentions_in")


@pytest.mark.parametrize("case", ["redirect-loop", "slow-drip", "never-answers"])
async def test_unfinished_sources_are_retried_later_in_bounded_time(
    fctx: Context, web: WebServer, case: str
) -> None:
    if case == "redirect-loop":
        web.route("/users/a", handler=loop)
        web.route("/users/b", handler=loop)
        path = "/users/a"
    elif case == "slow-drip":
        path = "/post"

        def slow(ex: Exchange) -> None:
            ex.start(200, {"Content-Type": "text/html"})
            while ex.write(b"<p>") and ex.sleep(0.1):
                pass

        web.route(path, handler=slow)
    else:
        path = "/post"
        web.route(path, handler=lambda ex: ex.sleep(30) and None)
    source = web.url(path, host="public.test")
    started = time.monotonic()
    [row] = await _process(fctx, source)
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert (row["status"], row["tries"]) == ("new", 1)  # retried later, per RETRY_DELAYS
    assert wm_comment(fctx, source) is None


async def test_endless_source_is_cut_at_the_byte_limit(fctx: Context, web: WebServer) -> None:
    written = [0]

    def flood(ex: Exchange) -> None:
        ex.start(200, {"Content-Type": "text/html"})
        ex.write(hentry(fctx).encode())
        while ex.write(b"<p>" * 20000):
            written[0] += 60000

    web.route("/post", handler=flood)
    source = web.url("/post", host="public.test")
    [row] = await _process(fctx, source)
    assert row["status"] == "done" and "larger than" in row["error"]
    assert wm_comment(fctx, source) is None
    assert written[0] < 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n{target}"),
        ("application/octet-stream", b"{target}"),
        ("application/javascript", b"location='{target}'"),
    ],
)
async def test_source_of_a_wrong_content_type_is_no_mention(
    fctx: Context, web: WebServer, ctype: str, body: bytes
) -> None:
    web.route("/post", body=body.replace(b"{target}", target_of(fctx).encode()), content_type=ctype)
    source = web.url("/post", host="public.test")
    [row] = await _process(fctx, source)
    assert row["status"] == "done" and "does not link" in row["error"]
    assert wm_comment(fctx, source) is None


async def test_source_with_invalid_utf8_is_read_without_crashing(
    fctx: Context, web: WebServer
) -> None:
    page = hentry(fctx, author="Ev\udcffe").encode("utf-8", "surrogateescape")
    page = page.replace(b"Hello there", b"Hello \xff\xfe\xc3( there")
    web.route("/post", body=page, content_type="text/html; charset=utf-8")
    source = web.url("/post", host="public.test")
    [row] = await _process(fctx, source)
    assert (row["status"], row["error"]) == ("done", "")
    comment = wm_comment(fctx, source)
    assert comment is not None and "Hello" in comment.content
    json.dumps(comment.content)  # stored text is valid Unicode


async def test_source_with_an_unknown_charset_is_read_as_utf8(
    fctx: Context, web: WebServer
) -> None:
    web.route("/post", body=hentry(fctx), content_type="text/html; charset=x-no-such-codec")
    source = web.url("/post", host="public.test")
    [row] = await _process(fctx, source)
    assert (row["status"], row["error"]) == ("done", "")


@pytest.mark.parametrize("shape", ["nested-divs", "nested-h-cards"])
async def test_deeply_nested_source_is_finished_not_retried_forever(
    fctx: Context, web: WebServer, shape: str
) -> None:
    depth = 3000
    if shape == "nested-divs":
        inner = "<div>" * depth + hentry(fctx) + "</div>" * depth
    else:
        inner = hentry(fctx, extra='<div class="h-card">' * depth + "x" + "</div>" * depth)
    web.route("/post", body=inner)
    source = web.url("/post", host="public.test")
    started = time.monotonic()
    rows = await _process(fctx, source)  # must not raise
    assert time.monotonic() - started < 10
    assert [r["status"] for r in rows] in (["done"], ["failed"])  # finished, not re-fetched


async def test_deeply_nested_json_source_is_finished_not_retried_forever(
    fctx: Context, web: WebServer
) -> None:
    web.route("/post", body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    source = web.url("/post", host="public.test")
    rows = await _process(fctx, source)  # must not raise
    assert [r["status"] for r in rows] in (["done"], ["failed"])


@pytest.mark.slow
async def test_attribute_bomb_source_is_handled_in_bounded_time(
    fctx: Context, web: WebServer
) -> None:
    attrs = " ".join(f"a{i}=x" for i in range(12_000))
    page = (
        f'<div class="h-entry"><a class="u-in-reply-to" href="{target_of(fctx)}" {attrs}>re</a>'
        '<div class="e-content">hi</div></div>'
    )
    web.route("/post", body=page)
    source = web.url("/post", host="public.test")
    started = time.monotonic()
    await _process(fctx, source)
    assert time.monotonic() - started < 1.5


async def test_huge_but_flat_source_is_handled_in_bounded_time(
    fctx: Context, web: WebServer
) -> None:
    """A source at the byte limit made of ordinary markup (many paragraphs and links)."""
    filler = "".join(f'<p><a href="https://x.example/{i}">link {i}</a></p>' for i in range(4000))
    web.route("/post", body=hentry(fctx, extra=filler))
    source = web.url("/post", host="public.test")
    started = time.monotonic()
    [row] = await _process(fctx, source)
    assert time.monotonic() - started < 10
    assert row["status"] == "done"


# ---- sending webmentions: endpoint discovery on a stranger's page ------------------------------


@pytest.mark.parametrize("target", BLOCKED)
@pytest.mark.parametrize("where", ["link-header", "html"])
async def test_discovered_endpoint_on_a_private_address_is_never_posted_to(
    fctx: Context, web: WebServer, spy: SpyBackend, target: str, where: str
) -> None:
    endpoint = blocked_targets(web)[target]
    if where == "link-header":
        web.route("/theirs", headers={"Link": f'<{endpoint}>; rel="webmention"'}, body="<p>hi</p>")
    else:
        web.route("/theirs", body=f'<link rel="webmention" href="{endpoint}"><p>hi</p>')
    result = await send_webmention(
        fctx.fetcher, target_of(fctx), web.url("/theirs", host="public.test")
    )
    assert result.error and result.status is None
    assert [r.method for r in web.requests] == ["GET"]
    only_loopback_hop(spy, web)
