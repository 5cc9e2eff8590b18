"""SafeFetcher against a real loopback server: limits, redirects and the address guard.

No test sends traffic anywhere but 127.0.0.1: host names like ``public.test`` are mapped to
127.0.0.1 by an injected resolver, and every connection the fetcher makes is recorded by a
spy network backend so the tests can prove blocked addresses were never connected to.
"""

from __future__ import annotations

import gzip
import ipaddress
import time

import anyio
import httpx
import pytest

from bridge.errors import BlockedAddressError, FetchError
from bridge.federation.fetch import IPAddress, SafeFetcher, is_public_address
from tests.netfakes import SpyBackend
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


HOSTS = {
    "public.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.1", "192.168.1.1"],
    "six.test": ["::1"],
}


async def fake_resolver(host: str, port: int) -> list[str]:
    if host not in HOSTS:
        raise OSError(f"unknown test host {host}")
    return list(HOSTS[host])


def loopback_names(host: str, ip: IPAddress) -> bool:
    """Policy for tests: ``public.test``/``other.test`` may be 127.0.0.1; all else as in prod."""
    if host in ("public.test", "other.test", "mixed.test") and str(ip) == "127.0.0.1":
        return True
    return is_public_address(ip)


def make(spy: SpyBackend, **kwargs: object) -> SafeFetcher:
    options: dict[str, object] = {
        "resolver": fake_resolver,
        "address_policy": loopback_names,
        "network_backend": spy,
        "timeout": 2.0,
    }
    options.update(kwargs)
    return SafeFetcher(**options)  # type: ignore[arg-type]


@pytest.fixture
def spy() -> SpyBackend:
    return SpyBackend()


# ---- ordinary fetches -------------------------------------------------------------------


async def test_get_returns_body_headers_and_final_url(web: WebServer, spy: SpyBackend) -> None:
    web.route("/page", body="<p>héllo</p>", headers={"X-Test": "1"})
    url = web.url("/page", host="public.test")
    async with make(spy) as fetcher:
        page = await fetcher.get(url, accept="text/html")
    assert (page.status, page.url, page.history) == (200, url, [])
    assert page.text == "<p>héllo</p>"
    assert page.content_type == "text/html"
    assert page.headers["x-test"] == "1"
    [request] = web.requests
    assert request.headers["accept"] == "text/html"
    assert request.headers["user-agent"].startswith("indiebridge/")
    assert request.headers["host"] == f"public.test:{web.port}"
    # the connection went to the checked IP address, never to the host name
    assert spy.connects == [("127.0.0.1", web.port)]


async def test_error_status_is_returned_not_raised(web: WebServer, spy: SpyBackend) -> None:
    web.route("/gone", status=410, body="deleted")
    web.route("/broken", status=500, body="oops")
    async with make(spy) as fetcher:
        gone = await fetcher.get(web.url("/gone", host="public.test"), accept="*/*")
        broken = await fetcher.get(web.url("/broken", host="public.test"), accept="*/*")
        missing = await fetcher.get(web.url("/nothing", host="public.test"), accept="*/*")
    assert (gone.status, gone.text, gone.ok) == (410, "deleted", False)
    assert broken.status == 500
    assert missing.status == 404


async def test_redirects_are_followed_and_recorded(web: WebServer, spy: SpyBackend) -> None:
    web.route("/a", status=301, headers={"Location": "/b"})
    web.route("/b", status=302, headers={"Location": web.url("/c?x=1", host="other.test")})
    web.route("/c", body="final")
    async with make(spy) as fetcher:
        page = await fetcher.get(web.url("/a", host="public.test"), accept="*/*")
    assert page.text == "final"
    assert page.url == web.url("/c?x=1", host="other.test")
    assert page.history == [web.url("/a", host="public.test"), web.url("/b", host="public.test")]
    assert [r.target for r in web.requests] == ["/a", "/b", "/c?x=1"]


async def test_allow_private_fetches_loopback(web: WebServer) -> None:
    web.route("/page", body="ok")
    async with SafeFetcher(allow_private=True, timeout=2.0) as fetcher:
        page = await fetcher.get(web.url("/page"), accept="*/*")
    assert page.text == "ok"


def test_from_config_uses_the_site_setting() -> None:
    class Site:
        allow_private_addresses = True

    fetcher = SafeFetcher.from_config(Site(), timeout=1.0)  # type: ignore[arg-type]
    assert (fetcher.allow_private, fetcher.timeout) == (True, 1.0)
    anyio.run(fetcher.aclose)


# ---- the address guard ------------------------------------------------------------------


async def test_loopback_is_refused_without_connecting(web: WebServer, spy: SpyBackend) -> None:
    web.route("/page", body="secret")
    async with SafeFetcher(network_backend=spy, timeout=2.0) as fetcher:
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1"):
            await fetcher.get(web.url("/page"), accept="*/*")
    assert spy.connects == []
    assert web.requests == []


BLOCKED_TARGETS = [
    "http://127.0.0.1:{port}/page",
    "http://127.8.9.10/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0:{port}/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]:{port}/page",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::]/",
    "http://[2002:7f00:1::]/",
    "http://internal.test/",
    "http://metadata.test/latest/meta-data/",
    "http://mixed.test:{port}/",
    "http://six.test:{port}/",
]


@pytest.mark.parametrize("target", BLOCKED_TARGETS)
async def test_redirect_to_blocked_address_is_refused_before_connecting(
    web: WebServer, spy: SpyBackend, target: str
) -> None:
    location = target.format(port=web.port)
    web.route("/go", status=302, headers={"Location": location})
    web.route("/page", body="secret")
    async with make(spy) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            await fetcher.get(web.url("/go", host="public.test"), accept="*/*")
    assert "refusing to fetch" in str(info.value)
    assert location.split("/")[2].split(":")[0].strip("[]") in str(info.value)
    # only the first, allowed hop ever connected; the blocked hop never did
    assert spy.connects == [("127.0.0.1", web.port)]
    assert [r.path for r in web.requests] == ["/go"]


async def test_dns_rebinding_is_checked_on_every_connection(
    web: WebServer, spy: SpyBackend
) -> None:
    answers = [["127.0.0.1"], ["10.9.9.9"]]

    async def flipping(host: str, port: int) -> list[str]:
        return answers.pop(0)

    def policy(host: str, ip: IPAddress) -> bool:
        return str(ip) == "127.0.0.1" or is_public_address(ip)

    web.route("/page", body="ok", headers={"Connection": "close"})
    url = web.url("/page", host="flip.test")
    async with make(spy, resolver=flipping, address_policy=policy) as fetcher:
        assert (await fetcher.get(url, accept="*/*")).text == "ok"
        with pytest.raises(BlockedAddressError, match=r"10\.9\.9\.9"):
            await fetcher.get(url, accept="*/*")
    assert spy.connects == [("127.0.0.1", web.port)]


async def test_injected_transport_is_checked_before_each_hop() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://internal.test/"})

    async def resolver(host: str, port: int) -> list[str]:
        return {"site.test": ["93.184.215.14"], "internal.test": ["10.1.2.3"]}[host]

    transport = httpx.MockTransport(handler)
    async with SafeFetcher(transport=transport, resolver=resolver) as fetcher:
        with pytest.raises(BlockedAddressError, match=r"internal\.test"):
            await fetcher.get("http://site.test/", accept="*/*")
    assert calls == ["http://site.test/"]


async def test_unresolvable_host_is_a_fetch_error(spy: SpyBackend) -> None:
    async with make(spy) as fetcher:
        with pytest.raises(FetchError, match=r"nowhere\.test"):
            await fetcher.get("http://nowhere.test/", accept="*/*")
    assert spy.connects == []


async def test_only_http_and_https(web: WebServer, spy: SpyBackend) -> None:
    web.route("/go", status=302, headers={"Location": "file:///etc/passwd"})
    async with make(spy) as fetcher:
        with pytest.raises(FetchError, match="only http and https"):
            await fetcher.get("ftp://public.test/x", accept="*/*")
        with pytest.raises(FetchError, match="only http and https"):
            await fetcher.get(web.url("/go", host="public.test"), accept="*/*")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.255.0.1", False),
        ("172.31.255.255", False),
        ("172.32.0.1", True),
        ("192.168.10.10", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.255", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("239.1.1.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:192.168.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:1", False),
        ("2002:c0a8:0101::", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# ---- redirect limits --------------------------------------------------------------------


async def test_redirect_loop_is_detected(web: WebServer, spy: SpyBackend) -> None:
    web.route("/a", status=302, headers={"Location": "/b"})
    web.route("/b", status=307, headers={"Location": "/a"})
    async with make(spy) as fetcher:
        with pytest.raises(FetchError, match="redirect loop"):
            await fetcher.get(web.url("/a", host="public.test"), accept="*/*")
    assert [r.path for r in web.requests] == ["/a", "/b"]


async def test_too_many_redirects(web: WebServer, spy: SpyBackend) -> None:
    for i in range(10):
        web.route(f"/r{i}", status=302, headers={"Location": f"/r{i + 1}"})
    web.route("/r10", body="end")
    async with make(spy, max_redirects=3) as fetcher:
        with pytest.raises(FetchError, match="more than 3 redirects"):
            await fetcher.get(web.url("/r0", host="public.test"), accept="*/*")
        assert len(web.requests) == 4
        page = await fetcher.get(web.url("/r7", host="public.test"), accept="*/*")
    assert page.text == "end"
    assert len(page.history) == 3


# ---- time and size limits -----------------------------------------------------------------


async def test_slow_drip_body_ends_at_the_deadline(web: WebServer, spy: SpyBackend) -> None:
    def drip(ex: Exchange) -> None:
        ex.start(200, {"Content-Type": "text/plain"})
        while ex.write(b"x") and ex.sleep(0.1):
            pass

    web.route("/slow", handler=drip)
    started = time.monotonic()
    async with make(spy, timeout=1.0) as fetcher:
        with pytest.raises(FetchError, match="within 1 s"):
            await fetcher.get(web.url("/slow", host="public.test"), accept="*/*")
    assert time.monotonic() - started < 2.5


async def test_server_that_never_answers_times_out(web: WebServer, spy: SpyBackend) -> None:
    def mute(ex: Exchange) -> None:
        ex.sleep(10)

    web.route("/mute", handler=mute)
    started = time.monotonic()
    async with make(spy, timeout=0.5) as fetcher:
        with pytest.raises(FetchError):
            await fetcher.get(web.url("/mute", host="public.test"), accept="*/*")
    assert time.monotonic() - started < 2.0


async def test_endless_body_stops_at_max_bytes(web: WebServer, spy: SpyBackend) -> None:
    sent: list[int] = []

    def endless(ex: Exchange) -> None:
        ex.start(200, {"Content-Type": "text/html"})
        while ex.write(b"a" * 16384):
            sent.append(16384)

    web.route("/endless", handler=endless)
    async with make(spy, max_bytes=100_000) as fetcher:
        with pytest.raises(FetchError, match="larger than 100000 bytes"):
            await fetcher.get(web.url("/endless", host="public.test"), accept="*/*")


async def test_declared_length_over_the_limit_fails_early(web: WebServer, spy: SpyBackend) -> None:
    web.route("/big", body=b"b" * 5000)
    async with make(spy, max_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match="larger than 1000 bytes"):
            await fetcher.get(web.url("/big", host="public.test"), accept="*/*")


async def test_gzip_is_decoded_and_bombs_are_cut_off(web: WebServer, spy: SpyBackend) -> None:
    web.route("/small", body=gzip.compress(b"<p>zipped</p>"), headers={"Content-Encoding": "gzip"})
    bomb = gzip.compress(b"\0" * 20_000_000)
    web.route("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    async with make(spy, max_bytes=100_000) as fetcher:
        page = await fetcher.get(web.url("/small", host="public.test"), accept="*/*")
        assert page.text == "<p>zipped</p>"
        with pytest.raises(FetchError, match="larger than 100000 bytes"):
            await fetcher.get(web.url("/bomb", host="public.test"), accept="*/*")
    assert web.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_connection_reset_is_a_fetch_error(web: WebServer, spy: SpyBackend) -> None:
    web.route("/reset", handler=lambda ex: ex.reset())
    async with make(spy) as fetcher:
        with pytest.raises(FetchError, match="/reset"):
            await fetcher.get(web.url("/reset", host="public.test"), accept="*/*")


# ---- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/html; charset=utf-8", b"caf\xc3\xa9", "café"),
        ("text/html; charset=utf-8", b"caf\xe9 \xff", "caf\ufffd \ufffd"),
        ("text/html", b"\xef\xbb\xbfcaf\xe9", "caf\ufffd"),
        ('text/plain; charset="ISO-8859-1"', b"caf\xe9", "café"),
        ("text/plain; charset=no-such-codec", b"caf\xe9", "caf\ufffd"),
        ("text/plain; charset=rot13", b"abc\xff", "abc\ufffd"),
    ],
)
async def test_text_never_raises(
    web: WebServer, spy: SpyBackend, content_type: str, body: bytes, text: str
) -> None:
    web.route("/t", body=body, content_type=content_type)
    async with make(spy) as fetcher:
        page = await fetcher.get(web.url("/t", host="public.test"), accept="*/*")
    assert page.text == text


async def test_content_type_is_reported_plainly(web: WebServer, spy: SpyBackend) -> None:
    web.route("/img", body=b"\x89PNG", content_type="Image/PNG; charset=binary")
    web.route("/none", body=b"?", content_type=None)
    async with make(spy) as fetcher:
        img = await fetcher.get(web.url("/img", host="public.test"), accept="text/html")
        none = await fetcher.get(web.url("/none", host="public.test"), accept="text/html")
    assert img.content_type == "image/png"
    assert none.content_type == ""


# ---- POST -------------------------------------------------------------------------------------


async def test_post_form_keeps_the_query_and_encodes_the_body(
    web: WebServer, spy: SpyBackend
) -> None:
    web.route("/endpoint", status=202, body="queued", methods=["POST"])
    async with make(spy) as fetcher:
        result = await fetcher.post_form(
            web.url("/endpoint?token=a b", host="public.test"),
            {"source": "https://a.example/p?x=1&y=2", "target": "https://b.example/é"},
        )
    assert result.status == 202
    [request] = web.requests
    assert request.method == "POST"
    assert request.query == "token=a%20b"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.body == (
        b"source=https%3A%2F%2Fa.example%2Fp%3Fx%3D1%26y%3D2&target=https%3A%2F%2Fb.example%2F%C3%A9"
    )


async def test_303_after_post_becomes_get(web: WebServer, spy: SpyBackend) -> None:
    web.route("/in", status=303, headers={"Location": "/status"}, methods=["POST"])
    web.route("/status", body="done", methods=["GET"])
    async with make(spy) as fetcher:
        result = await fetcher.post(web.url("/in", host="public.test"), b"{}", {"X-A": "1"})
    assert result.text == "done"
    assert [(r.method, r.path, r.body) for r in web.requests] == [
        ("POST", "/in", b"{}"),
        ("GET", "/status", b""),
    ]


async def test_credentials_do_not_follow_a_redirect_to_another_host(
    web: WebServer, spy: SpyBackend
) -> None:
    web.route("/a", status=307, headers={"Location": "/b"})
    web.route("/b", status=302, headers={"Location": web.url("/c", host="other.test")})
    web.route("/c", body="ok")
    async with make(spy) as fetcher:
        await fetcher.get(
            web.url("/a", host="public.test"), accept="*/*", auth=httpx.BasicAuth("u", "p")
        )
    auth = [("authorization" in r.headers) for r in web.requests]
    assert auth == [True, True, False]
