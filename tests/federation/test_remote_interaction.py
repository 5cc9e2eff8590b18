"""The one-step remote follow/reply/like/boost form: WebFinger intents (FEP-3b86) or the
OStatus subscribe template, fetched from a real loopback web server through the
SSRF-safe fetcher, and the daemon's ``/interact`` redirect or in-page error.

The JRD documents are shaped like the FEP-3b86 example (Mastodon's WebFinger answer)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup
from starlette.applications import Starlette

from bridge import config as config_mod
from bridge.db import Database
from bridge.errors import InteractionError
from bridge.federation import remote_interaction as ri
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from tests.webserver import WebServer, web_fixture  # noqa: F401 - `web` fixture

pytestmark = pytest.mark.anyio

POST_ID = "https://blog.example/ap/posts/first-article.json"
ACTOR = "https://blog.example/ap/actor.json"


def mastodon_jrd(origin: str, user: str = "reader") -> dict[str, Any]:
    host = urlsplit(origin).netloc
    return {
        "subject": f"acct:{user}@{host}",
        "links": [
            {"rel": "self", "type": "application/activity+json", "href": f"{origin}/users/{user}"},
            {"rel": ri.SUBSCRIBE, "template": f"{origin}/authorize_interaction?uri={{uri}}"},
            {
                "rel": ri.FEP_3B86 + "Follow",
                "template": f"{origin}/authorize_interaction?uri={{object}}",
            },
            {
                "rel": ri.FEP_3B86 + "Create",
                "template": f"{origin}/share?reply={{inReplyTo}}&t={{name}}",
            },
            {"rel": ri.FEP_3B86 + "Like", "template": f"{origin}/intents/like?id={{object}}"},
        ],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@reader@social.example", ("reader", "social.example")),
        ("reader@Social.Example", ("reader", "social.example")),
        ("acct:reader@social.example:8443", ("reader", "social.example:8443")),
        ("  @r.e_a-d+er@localhost:3000 ", ("r.e_a-d+er", "localhost:3000")),
    ],
)
def test_handles_are_parsed(text: str, expected: tuple[str, str]) -> None:
    assert ri.parse_handle(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "reader",
        "social.example",
        "@reader@",
        "@reader@nodots",
        "a@b@c.example",
        "@reader@evil.example/path",
        "@reader@evil.example?x",
        "<script>@x.example",
    ],
)
def test_bad_handles_are_one_line_errors(text: str) -> None:
    with pytest.raises(InteractionError) as info:
        ri.parse_handle(text)
    assert "@you@your.server" in str(info.value) and "\n" not in str(info.value)


def test_intents_win_over_subscribe_and_values_are_percent_encoded() -> None:
    jrd = mastodon_jrd("https://social.example")
    assert ri.choose(jrd, "like", POST_ID) == (
        "https://social.example/intents/like?id=https%3A%2F%2Fblog.example%2Fap%2Fposts%2F"
        "first-article.json"
    )
    # Create fills {inReplyTo}; the unknown {name} becomes empty.
    reply = ri.choose(jrd, "reply", POST_ID)
    assert reply is not None
    assert parse_qs(urlsplit(reply).query, keep_blank_values=True) == {
        "reply": [POST_ID],
        "t": [""],
    }
    # No Announce intent: the OStatus subscribe template is the fallback.
    assert ri.choose(jrd, "boost", POST_ID) == (
        "https://social.example/authorize_interaction?uri=https%3A%2F%2Fblog.example%2Fap%2F"
        "posts%2Ffirst-article.json"
    )
    assert ri.choose({"links": []}, "follow", ACTOR) is None
    assert ri.choose(["not", "a", "jrd"], "follow", ACTOR) is None


@pytest.fixture
async def ctx(make_site: Callable[..., Path]) -> AsyncIterator[Context]:
    folder = make_site({"allow_private_addresses": True})
    config = config_mod.load(folder)
    site_mod.build(config)
    context = make_context(config, Database(config.db_path), load_keys(config.state_dir))
    yield context
    await context.fetcher.aclose()
    context.db.close()


async def interact(ctx: Context, **params: str) -> httpx.Response:
    app = Starlette(routes=ri.routes(ctx))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.example") as c:
        return await c.get("/interact", params=params)


async def test_interact_redirects_to_the_readers_server(ctx: Context, web: WebServer) -> None:
    origin = web.url("").rstrip("/")
    host = urlsplit(origin).netloc
    web.route(
        "/.well-known/webfinger",
        body=json.dumps(mastodon_jrd(origin)),
        content_type="application/jrd+json",
    )
    response = await interact(ctx, handle=f"@reader@{host}", intent="like", object=POST_ID)
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(f"{origin}/intents/like?id=https%3A")
    assert web.requests_to("/.well-known/webfinger")
    follow = await interact(ctx, handle=f"reader@{host}", intent="follow", object=ACTOR)
    assert follow.status_code == 303
    assert parse_qs(urlsplit(follow.headers["location"]).query)["uri"] == [ACTOR]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"handle": "nobody", "intent": "like", "object": POST_ID}, "not a fediverse handle"),
        (
            {"handle": "@a@b.example", "intent": "like", "object": "https://x.example/1"},
            "only acts",
        ),
        ({"handle": "@a@b.example", "intent": "dance", "object": POST_ID}, "unknown action"),
    ],
)
async def test_interact_explains_bad_input_in_the_page(
    ctx: Context, params: dict[str, str], message: str
) -> None:
    response = await interact(ctx, **params)
    assert response.status_code == 400
    soup = BeautifulSoup(response.text, "html.parser")
    alert = soup.select_one("[role=alert]")
    assert alert is not None and message in alert.get_text()
    assert "<script" not in response.text


async def test_unknown_reader_and_private_addresses_are_refused(
    make_site: Callable[..., Path], web: WebServer
) -> None:
    folder = make_site()  # private addresses not allowed: the safe fetcher refuses loopback
    config = config_mod.load(folder)
    site_mod.build(config)
    context = make_context(config, Database(config.db_path), load_keys(config.state_dir))
    try:
        host = urlsplit(web.url("")).netloc
        response = await interact(context, handle=f"@reader@{host}", intent="like", object=POST_ID)
        assert response.status_code == 400
        assert "could not be reached" in response.text
        assert web.requests_to("/.well-known/webfinger") == []
    finally:
        await context.fetcher.aclose()
        context.db.close()


async def test_a_reader_server_without_links_gets_a_clear_message(
    ctx: Context, web: WebServer
) -> None:
    host = urlsplit(web.url("")).netloc
    web.route("/.well-known/webfinger", body='{"links": []}', content_type="application/json")
    response = await interact(ctx, handle=f"@reader@{host}", intent="boost", object=POST_ID)
    assert response.status_code == 400
    assert "offers no page to boost from" in response.text


def test_built_pages_carry_the_no_js_forms(built: Any) -> None:
    soup = BeautifulSoup(built.text("posts/first-article/index.html"), "html.parser")
    forms = soup.select("form.remote-interact")
    assert len(forms) == 2  # the post's reply/like/boost form and the footer's follow form
    for form in forms:
        assert form["action"] == "https://blog.example/interact"
        assert form["method"] == "get"
        assert form.select_one("input[name=handle][required]") is not None
    values = {b["value"] for f in forms for b in f.select("button[name=intent]")}
    assert values == {"follow", "reply", "like", "boost"}
    objects = {f.select_one("input[name=object]")["value"] for f in forms}  # type: ignore[index]
    assert objects == {POST_ID, ACTOR}


async def test_lookups_of_one_server_are_rate_limited(
    ctx: Context, web: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ri, "LOOKUPS_PER_MINUTE", 2)
    origin = web.url("").rstrip("/")
    host = urlsplit(origin).netloc
    web.route("/.well-known/webfinger", body=json.dumps(mastodon_jrd(origin)))
    app = Starlette(routes=ri.routes(ctx))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.example") as c:
        params = {"handle": f"@reader@{host}", "intent": "like", "object": POST_ID}
        codes = [(await c.get("/interact", params=params)).status_code for _ in range(3)]
        last = await c.get("/interact", params=params)
    assert codes == [303, 303, 400]
    assert "too many lookups" in last.text
    assert len(web.requests_to("/.well-known/webfinger")) == 2
