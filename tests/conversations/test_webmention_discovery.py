"""Webmention endpoint discovery and sending, over real HTTP on 127.0.0.1.

One test per webmention.rocks discovery case (D1-D23), each page served by the loopback
test server under the host name ``rocks.test`` (mapped to 127.0.0.1 by the resolver), so
absolute and relative endpoints resolve exactly as they would on the real site.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.conversations.webmention_client import (
    discover_endpoint,
    endpoint_from_html,
    endpoint_from_link_headers,
    find_links,
    links_to,
    parse_link_header,
    send_webmention,
)
from bridge.federation.fetch import IPAddress, SafeFetcher, is_public_address
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio

HOST = "rocks.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def resolver(host: str, port: int) -> list[str]:
    if host in (HOST, "other.test"):
        return ["127.0.0.1"]
    if host == "internal.test":
        return ["10.0.0.7"]
    raise OSError(f"unknown host {host}")


def policy(host: str, ip: IPAddress) -> bool:
    return (host in (HOST, "other.test") and ip.is_loopback) or is_public_address(ip)


def fetcher() -> SafeFetcher:
    return SafeFetcher(resolver=resolver, address_policy=policy, timeout=3.0)


def page(*body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><title>Test</title>{head}</head>"
        f"<body>{''.join(body)}</body></html>"
    )


async def discover(web: WebServer, path: str) -> str | None:
    async with fetcher() as f:
        return await discover_endpoint(f, web.url(path, host=HOST))


# ---- webmention.rocks discovery tests ---------------------------------------------------------


async def test_d1_link_header_unquoted_rel_relative_url(web: WebServer) -> None:
    web.route("/test/1", headers={"Link": "</test/1/webmention?head=true>; rel=webmention"})
    assert await discover(web, "/test/1") == web.url("/test/1/webmention?head=true", host=HOST)


async def test_d2_link_header_unquoted_rel_absolute_url(web: WebServer) -> None:
    endpoint = web.url("/test/2/webmention?head=true", host=HOST)
    web.route("/test/2", headers={"Link": f"<{endpoint}>; rel=webmention"})
    assert await discover(web, "/test/2") == endpoint


async def test_d3_link_element_relative_href(web: WebServer) -> None:
    web.route("/test/3", body=page(head='<link rel="webmention" href="/test/3/webmention">'))
    assert await discover(web, "/test/3") == web.url("/test/3/webmention", host=HOST)


async def test_d4_link_element_absolute_href_before_rel(web: WebServer) -> None:
    endpoint = web.url("/test/4/webmention", host=HOST)
    web.route("/test/4", body=page(head=f'<link href="{endpoint}" rel="webmention">'))
    assert await discover(web, "/test/4") == endpoint


async def test_d5_a_element_relative_href(web: WebServer) -> None:
    web.route(
        "/test/5", body=page('<p>See <a rel="webmention" href="/test/5/webmention">x</a></p>')
    )
    assert await discover(web, "/test/5") == web.url("/test/5/webmention", host=HOST)


async def test_d6_a_element_absolute_href(web: WebServer) -> None:
    endpoint = web.url("/test/6/webmention", host=HOST)
    web.route("/test/6", body=page(f'<a href="{endpoint}" rel="webmention">endpoint</a>'))
    assert await discover(web, "/test/6") == endpoint


async def test_d7_header_name_is_case_insensitive(web: WebServer) -> None:
    endpoint = web.url("/test/7/webmention?head=true", host=HOST)
    web.route("/test/7", headers=[("LinK", f"<{endpoint}>; rel=webmention")])
    assert await discover(web, "/test/7") == endpoint


async def test_d8_link_header_quoted_rel(web: WebServer) -> None:
    endpoint = web.url("/test/8/webmention?head=true", host=HOST)
    web.route("/test/8", headers={"Link": f'<{endpoint}>; rel="webmention"'})
    assert await discover(web, "/test/8") == endpoint


async def test_d9_link_element_with_several_rel_values(web: WebServer) -> None:
    body = page(head='<link rel="webmention somethingelse" href="/test/9/webmention">')
    web.route("/test/9", body=body)
    assert await discover(web, "/test/9") == web.url("/test/9/webmention", host=HOST)


async def test_d10_link_header_with_several_rel_values(web: WebServer) -> None:
    endpoint = web.url("/test/10/webmention?head=true", host=HOST)
    web.route("/test/10", headers={"Link": f'<{endpoint}>; rel="webmention somethingelse"'})
    assert await discover(web, "/test/10") == endpoint


async def test_d11_header_wins_over_link_and_a(web: WebServer) -> None:
    body = page(
        '<a rel="webmention" href="/test/11/webmention/error">a</a>',
        head='<link rel="webmention" href="/test/11/webmention/error">',
    )
    web.route("/test/11", body=body, headers={"Link": "</test/11/webmention>; rel=webmention"})
    assert await discover(web, "/test/11") == web.url("/test/11/webmention", host=HOST)


async def test_d12_rel_is_matched_as_an_exact_token(web: WebServer) -> None:
    body = page(
        '<a rel="webmention" href="/test/12/webmention">real</a>',
        head='<link rel="not-webmention" href="/test/12/webmention/error">',
    )
    web.route("/test/12", body=body)
    assert await discover(web, "/test/12") == web.url("/test/12/webmention", host=HOST)


async def test_d13_decoy_inside_an_html_comment_is_ignored(web: WebServer) -> None:
    body = page(
        '<!-- <a rel="webmention" href="/test/13/webmention/error">nope</a> -->',
        '<a rel="webmention" href="/test/13/webmention">real</a>',
    )
    web.route("/test/13", body=body)
    assert await discover(web, "/test/13") == web.url("/test/13/webmention", host=HOST)


async def test_d14_decoy_in_escaped_html_is_ignored(web: WebServer) -> None:
    body = page(
        "<p>Markup: <code>&lt;a href=&quot;/test/14/webmention/error&quot; "
        "rel=&quot;webmention&quot;&gt;&lt;/a&gt;</code></p>",
        '<a rel="webmention" href="/test/14/webmention">real</a>',
    )
    web.route("/test/14", body=body)
    assert await discover(web, "/test/14") == web.url("/test/14/webmention", host=HOST)


async def test_d15_empty_href_is_the_page_itself(web: WebServer) -> None:
    web.route("/test/15", body=page(head='<link rel="webmention" href="">'))
    assert await discover(web, "/test/15") == web.url("/test/15", host=HOST)


async def test_d16_a_before_link_wins(web: WebServer) -> None:
    body = page(
        '<a rel="webmention" href="/test/16/webmention">first</a>',
        '<link rel="webmention" href="/test/16/webmention/error">',
    )
    web.route("/test/16", body=body)
    assert await discover(web, "/test/16") == web.url("/test/16/webmention", host=HOST)


async def test_d17_link_before_a_wins(web: WebServer) -> None:
    body = page(
        '<link rel="webmention" href="/test/17/webmention">',
        '<a rel="webmention" href="/test/17/webmention/error">second</a>',
    )
    web.route("/test/17", body=body)
    assert await discover(web, "/test/17") == web.url("/test/17/webmention", host=HOST)


async def test_d18_two_link_headers(web: WebServer) -> None:
    headers = [
        ("Link", '</test/18/webmention/error>; rel="other"'),
        ("Link", '</test/18/webmention?head=true>; rel="webmention"'),
    ]
    web.route("/test/18", headers=headers)
    assert await discover(web, "/test/18") == web.url("/test/18/webmention?head=true", host=HOST)


async def test_d19_one_link_header_with_two_links(web: WebServer) -> None:
    error = web.url("/test/19/webmention/error", host=HOST)
    real = web.url("/test/19/webmention?head=true", host=HOST)
    web.route("/test/19", headers={"Link": f'<{error}>; rel="other", <{real}>; rel="webmention"'})
    assert await discover(web, "/test/19") == real


async def test_d20_link_without_href_is_skipped(web: WebServer) -> None:
    body = page(
        '<a rel="webmention" href="/test/20/webmention">real</a>',
        head='<link rel="webmention">',
    )
    web.route("/test/20", body=body)
    assert await discover(web, "/test/20") == web.url("/test/20/webmention", host=HOST)


async def test_d21_query_string_is_kept(web: WebServer) -> None:
    web.route(
        "/test/21", body=page(head='<link rel="webmention" href="/test/21/webmention?query=yes">')
    )
    assert await discover(web, "/test/21") == web.url("/test/21/webmention?query=yes", host=HOST)


async def test_d22_path_relative_endpoint(web: WebServer) -> None:
    web.route("/test/22", body=page(head='<link rel="webmention" href="22/webmention">'))
    assert await discover(web, "/test/22") == web.url("/test/22/webmention", host=HOST)


async def test_d23_relative_endpoint_after_a_redirect(web: WebServer) -> None:
    web.route("/test/23/page", status=302, headers={"Location": "/test/23/page/abc123"})
    body = page(head='<link rel="webmention" href="webmention-endpoint/abc123">')
    web.route("/test/23/page/abc123", body=body)
    endpoint = web.url("/test/23/page/webmention-endpoint/abc123", host=HOST)
    assert await discover(web, "/test/23/page") == endpoint
    # each URL was asked for exactly once
    assert [r.path for r in web.requests] == ["/test/23/page", "/test/23/page/abc123"]


# ---- more discovery details -----------------------------------------------------------------


async def test_no_endpoint_and_non_html_bodies(web: WebServer) -> None:
    web.route("/plain", body='<link rel="webmention" href="/x">', content_type="text/plain")
    web.route("/none", body=page("<p>nothing</p>"))
    web.route("/missing", status=404, body=page(head='<link rel="webmention" href="/x">'))
    assert await discover(web, "/plain") is None
    assert await discover(web, "/none") is None
    assert await discover(web, "/missing") is None


async def test_link_header_with_commas_inside_the_uri(web: WebServer) -> None:
    header = (
        '<https://rocks.test/a,b>; rel="other"; title="x, y", '
        '</wm?list=1,2;x>; title="a; rel=webmention"; REL=Webmention'
    )
    web.route("/commas", headers={"Link": header})
    assert await discover(web, "/commas") == web.url("/wm?list=1,2;x", host=HOST)


def test_parse_link_header() -> None:
    assert parse_link_header('<a>; rel="x y"; rel=z, <b,c>;title="q\\"r", junk') == [
        ("a", {"rel": "x y"}),
        ("b,c", {"title": 'q"r'}),
    ]


# ---- sending ----------------------------------------------------------------------------------


async def test_send_posts_form_to_endpoint_keeping_its_query(web: WebServer) -> None:
    web.route(
        "/test/21", body=page(head='<link rel="webmention" href="/test/21/webmention?query=yes">')
    )
    web.route(
        "/test/21/webmention",
        status=201,
        headers={"Location": "/status/7"},
        methods=["POST"],
    )
    source = "https://blog.example/posts/hello/?utm=a&b=c"
    target = web.url("/test/21", host=HOST)
    async with fetcher() as f:
        result = await send_webmention(f, source, target)
    assert result.ok, result
    assert result.endpoint == web.url("/test/21/webmention?query=yes", host=HOST)
    assert (result.status, result.location) == (201, web.url("/status/7", host=HOST))
    post = web.requests_to("/test/21/webmention")[0]
    assert post.method == "POST"
    assert post.query == "query=yes"
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert post.form == {"source": [source], "target": [target]}
    assert post.body == (
        b"source=https%3A%2F%2Fblog.example%2Fposts%2Fhello%2F%3Futm%3Da%26b%3Dc&target="
        + target.replace(":", "%3A").replace("/", "%2F").encode()
    )


async def test_send_without_endpoint(web: WebServer) -> None:
    web.route("/quiet", body=page("<p>no endpoint</p>"))
    async with fetcher() as f:
        result = await send_webmention(f, "https://blog.example/p/", web.url("/quiet", host=HOST))
    assert not result.ok
    assert (result.endpoint, result.status, result.error) == (None, None, "no webmention endpoint")


async def test_send_reports_endpoint_refusal(web: WebServer) -> None:
    web.route("/t", headers={"Link": "</wm>; rel=webmention"})
    web.route("/wm", status=400, body="source does not link to target", methods=["POST"])
    async with fetcher() as f:
        result = await send_webmention(f, "https://blog.example/p/", web.url("/t", host=HOST))
    assert not result.ok
    assert result.status == 400
    assert result.error is not None and "400" in result.error


async def test_send_refuses_a_private_endpoint(web: WebServer) -> None:
    web.route("/t", headers={"Link": "<http://internal.test/wm>; rel=webmention"})
    async with fetcher() as f:
        result = await send_webmention(f, "https://blog.example/p/", web.url("/t", host=HOST))
    assert not result.ok
    assert result.endpoint == "http://internal.test/wm"
    assert result.error is not None and "10.0.0.7" in result.error
    assert [r.path for r in web.requests] == ["/t"]


async def test_send_reports_unreachable_target() -> None:
    async with fetcher() as f:
        result = await send_webmention(f, "https://blog.example/p/", "http://nowhere.test/")
    assert not result.ok
    assert result.error is not None and result.error.startswith("discovery failed")


# ---- find_links and links_to ------------------------------------------------------------------


def test_find_links() -> None:
    html = """
    <p><a href="https://b.example/post">one</a> <a href="/local">two</a>
    <a href="https://b.example/post">dup</a> <a href="#top">self</a>
    <a href="mailto:x@y.example">mail</a> <a href="https://c.example/x#frag">frag</a>
    <!-- <a href="https://hidden.example/">hidden</a> --> <a>none</a>
    <img src="https://img.example/p.png"></p>
    """
    assert find_links(html, "https://blog.example/posts/a/") == [
        "https://b.example/post",
        "https://blog.example/local",
        "https://c.example/x#frag",
    ]


def test_find_links_honours_base() -> None:
    html = '<head><base href="https://cdn.example/dir/"></head><a href="x">x</a>'
    assert find_links(html, "https://blog.example/") == ["https://cdn.example/dir/x"]


@pytest.mark.parametrize(
    ("document", "content_type", "expected"),
    [
        ('<a href="https://t.example/p/1">x</a>', "text/html; charset=utf-8", True),
        ('<a href="/p/1">x</a>', "text/html", True),
        ('<img src="//t.example/p/1">', "text/html", True),
        ('<a href="https://t.example/p/1#c">x</a>', "text/html", True),
        ('<a href="https://t.example/p/1/">x</a>', "text/html", False),
        ('<a href="https://t.example/p/10">x</a>', "text/html", False),
        ("<p>https://t.example/p/1</p>", "text/html", False),
        ('<!-- <a href="https://t.example/p/1"> -->', "text/html", False),
        ('{"inReplyTo": "https://t.example/p/1"}', "application/activity+json", True),
        ('{"a": [{"b": "https://t.example/p/1"}]}', "application/json", True),
        ('{"content": "see https://t.example/p/1 !"}', "application/json", False),
        ("{broken", "application/json", False),
        ("see https://t.example/p/1 there", "text/plain", True),
        ("see https://t.example/p/2 there", "text/plain", False),
        ("https://t.example/p/1", "image/png", False),
    ],
)
def test_links_to(document: str, content_type: str, expected: bool) -> None:
    target = "https://t.example/p/1#ignored"
    assert links_to(document, content_type, target, "https://t.example/x") is expected


def test_links_to_honours_base() -> None:
    html = '<base href="https://t.example/p/"><a href="1">x</a>'
    assert links_to(html, "text/html", "https://t.example/p/1", "https://s.example/")


async def test_end_to_end_verification_of_a_source(web: WebServer) -> None:
    """The receiver's use: fetch the source, then check that it links to the target."""
    web.route("/source", body=page('<a href="https://t.example/p/1">reply</a>'))
    async with fetcher() as f:
        source = await f.get(web.url("/source", host=HOST), accept="text/html")
    assert links_to(source.text, source.content_type, "https://t.example/p/1", source.url)


async def test_endpoint_handler_sees_exactly_one_post(web: WebServer) -> None:
    seen: list[str] = []

    def endpoint(ex: Exchange) -> None:
        seen.append(ex.request.body.decode())
        ex.send(202, {"Content-Type": "text/plain"}, b"accepted")

    web.route("/t", headers={"Link": "</wm>; rel=webmention"})
    web.route("/wm", handler=endpoint)
    async with fetcher() as f:
        result = await send_webmention(f, "https://blog.example/p/", web.url("/t", host=HOST))
    assert result.ok and result.location is None
    assert len(seen) == 1


# ---- hostile input never raises ------------------------------------------------------------------


def test_broken_urls_are_skipped_not_raised() -> None:
    bad = '<base href="http://[b/"><link rel="webmention" href="http://[x/"><a href="http://[y/">'
    assert endpoint_from_html(bad, "https://a.example/") is None
    assert (
        endpoint_from_link_headers(["<http://[x/>; rel=webmention"], "https://a.example/") is None
    )
    assert find_links(bad + '<a href="/ok">', "https://a.example/") == ["https://a.example/ok"]
    assert not links_to(bad, "text/html", "https://a.example/x", "https://a.example/")


MARKUP = st.lists(
    st.sampled_from(
        [
            "<a ",
            "<link ",
            "<base ",
            "rel=webmention",
            'href="',
            "http://[",
            "<!--",
            "-->",
            "<![CDATA[",
            "</",
            ">",
            '"',
            "'",
            "=",
            "&amp;",
            "&#x",
            "#",
            "?",
            " ",
            "\n",
            "x",
            "/",
            "<script>",
            "\x00",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(MARKUP)
def test_parsers_never_raise(markup: str) -> None:
    base = "https://a.example/p"
    endpoint_from_html(markup, base)
    endpoint_from_link_headers([markup], base)
    parse_link_header(markup)
    find_links(markup, base)
    for content_type in ("text/html", "application/json", "text/plain"):
        links_to(markup, content_type, "https://a.example/x", base)
